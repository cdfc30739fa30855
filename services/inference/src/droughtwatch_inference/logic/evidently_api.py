"""Evidently's API, imported on first use: the import costs seconds of CPU (the README's
benchmarks), so Observe pays it once per container when its first file comes, and in the
invocation it does not count against Lambda's 10 s init phase. Every Observe module takes
Evidently from here."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from functools import cache
from types import SimpleNamespace


@cache
def load_evidently() -> SimpleNamespace:
    """Evidently's report, dataset and the metrics Observe uses."""
    # Evidently 0.7.23 warns while importing itself: its legacy package touches numpy.core
    # (DeprecationWarning "numpy.core is deprecated"), it calls deprecated litestar APIs
    # (LitestarDeprecationWarning, a DeprecationWarning raised from litestar's modules), and one
    # of its docstrings has an invalid escape (reported only when the file is compiled). All
    # three are Evidently's internal noise; they are silenced for this import only, by message.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"numpy\.core is deprecated", DeprecationWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"litestar(\.|$)")
        warnings.filterwarnings("ignore", "invalid escape sequence", DeprecationWarning)
        warnings.filterwarnings("ignore", "invalid escape sequence", SyntaxWarning)
        from evidently import (
            BinaryClassification,
            DataDefinition,
            Dataset,
            MulticlassClassification,
            Report,
        )
        from evidently.core.metric_types import render_widgets
        from evidently.legacy.renderers.html_widgets import group_widget, table_data, text_widget
        from evidently.metrics import (
            Accuracy,
            F1ByLabel,
            F1Score,
            MissingValueCount,
            PrecisionByLabel,
            RecallByLabel,
            UniqueValueCount,
            ValueDrift,
        )
    return SimpleNamespace(
        Report=Report,
        Dataset=Dataset,
        DataDefinition=DataDefinition,
        MulticlassClassification=MulticlassClassification,
        BinaryClassification=BinaryClassification,
        UniqueValueCount=UniqueValueCount,
        MissingValueCount=MissingValueCount,
        ValueDrift=ValueDrift,
        Accuracy=Accuracy,
        F1Score=F1Score,
        F1ByLabel=F1ByLabel,
        PrecisionByLabel=PrecisionByLabel,
        RecallByLabel=RecallByLabel,
        render_widgets=render_widgets,
        group_widget=group_widget,
        table_data=table_data,
        text_widget=text_widget,
    )


@contextlib.contextmanager
def expected_classification_warnings() -> Iterator[None]:
    """scikit-learn (under Evidently's classification metrics) warns where a metric is
    ill-defined and then uses 0: precision of a class never predicted, recall of a class never
    seen, a confusion matrix of one class only. Those zeros are the values Observe stores, by
    that convention, so the warnings are expected, not news. A binary task (two classes seen)
    also computes true and false negative rates, 0/0 when a class is only predicted: numpy's
    warning for those (values Observe does not use) is expected too."""
    import numpy as np
    from sklearn.exceptions import UndefinedMetricWarning

    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.filterwarnings("ignore", "A single label was found", UserWarning)
        yield
