"""Logical names of a component's children: ``<component name>-<purpose>`` (the Pulumi and awsx
convention), so that two instances of a component never collide and a child's name says whose it
is. (Physical AWS names are naming.Namer's.)

Stacks created before this convention knew each child by its bare purpose (``vpc``, ``subnets``),
and the network's children under one ``Network`` component. Each child carries that former name
and parent as an alias, so `pulumi up` renames it in the state instead of replacing it; children
of a renamed child component follow through Pulumi's inherited aliases.
"""

from __future__ import annotations

from typing import Any

import pulumi

# Where the network's resources lived before it was split into Vpc, SecurityGroups, Endpoints.
FORMER_NETWORK_TYPE = "droughtwatch:infra:Network"
FORMER_NETWORK_NAME = "network"


def former_network() -> pulumi.Output[str]:
    """The URN the single Network component had."""
    return pulumi.create_urn(FORMER_NETWORK_NAME, FORMER_NETWORK_TYPE)


class ChildNames:
    """``ChildNames(self, name)`` in a component: ``name(purpose)`` and ``opts(purpose)`` for each
    child; the component's main resource may take the component's own name (no purpose)."""

    def __init__(
        self,
        parent: pulumi.Resource,
        component_name: str,
        *,
        former_parent: pulumi.Input[str] | None = None,
    ) -> None:
        self.parent = parent
        self.component_name = component_name
        self.former_parent = former_parent

    def name(self, purpose: str = "") -> str:
        return f"{self.component_name}-{purpose}" if purpose else self.component_name

    def opts(self, purpose: str = "", **options: Any) -> pulumi.ResourceOptions:
        """Parented to the component and, where the child's name or parent changed, aliased to
        its former name (``purpose``) and parent."""
        aliases = []
        if self.former_parent is not None:
            aliases.append(pulumi.Alias(name=purpose, parent=self.former_parent))
        elif purpose:
            aliases.append(pulumi.Alias(name=purpose))
        return pulumi.ResourceOptions(parent=self.parent, aliases=aliases, **options)
