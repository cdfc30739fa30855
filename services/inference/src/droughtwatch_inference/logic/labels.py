"""Late labels in: the first step of every run reads the label files under the labels prefix that
it has not read yet (label_file.py: CSV or Parquet, id,label) and writes their labels, each file
whole or not at all. A refused file is recorded with its error and the others go on; Observe
then recomputes the days whose images got new labels (logic/daily.py).

A file version (key, ETag) is read once, as a raw object version is: the same bytes uploaded
again change nothing, new bytes under the same key are read again. A file that cannot be read
right now (gone since the listing, or refused by S3) is not recorded, so a later run reads it.
"""

from __future__ import annotations

import logging

from droughtwatch_contract.keys import KeyLayout

from droughtwatch_inference import logs
from droughtwatch_inference.errors import InvalidLabelFile, ObjectForbidden, ObjectMissing
from droughtwatch_inference.label_file import parse_label_file
from droughtwatch_inference.logic.ports import LabelsPort, StorePort
from droughtwatch_inference.logic.stage import describe
from droughtwatch_inference.records import LabelFileOutcome


def ingest_labels(
    store: StorePort, labels: LabelsPort, bucket: str, layout: KeyLayout, run_id: str
) -> list[LabelFileOutcome]:
    """Read each new label file of ``bucket``, in key order; what became of each (files that
    another run took at the same time are left out). A stage error (the database or the
    bucket unreachable) propagates: nothing of the file in hand is recorded."""
    known = labels.known_files(bucket)
    outcomes: list[LabelFileOutcome] = []
    new = [
        obj
        for obj in store.list(bucket, layout.labels)
        if layout.is_label_object(obj.key) and (obj.key, obj.etag) not in known
    ]
    for obj in sorted(new, key=lambda o: o.key):
        try:
            body, etag = store.get_bytes(bucket, obj.key)
        except (ObjectMissing, ObjectForbidden) as exc:
            # not recorded: the next run lists it again (or no more, once it is gone)
            logs.event("labels.unreadable", logging.WARNING, key=obj.key, error=describe(exc))
            outcomes.append(LabelFileOutcome(obj.key, obj.etag, "unreadable", error=describe(exc)))
            continue
        if (obj.key, etag) in known:  # replaced by a version read before, since the listing
            continue
        try:
            parsed = parse_label_file(body, obj.key)
        except InvalidLabelFile as exc:
            outcome = labels.record_failed(bucket, obj.key, etag, len(body), run_id, describe(exc))
        except Exception as exc:  # a file the parser did not foresee
            # Refused like any bad file, with what went wrong: it must not stop every run
            # (ingestion comes first) until someone deletes it.
            error = f"{obj.key}: cannot be read as a label file ({describe(exc)})"
            outcome = labels.record_failed(bucket, obj.key, etag, len(body), run_id, error)
        else:
            outcome = labels.ingest(bucket, obj.key, etag, len(body), run_id, parsed.labels)
        if outcome is None:
            continue  # another run read this version at the same time
        logs.event(
            "labels.file",
            logging.WARNING if outcome.status == "failed" else logging.INFO,
            run_id=run_id,
            **outcome.as_dict(),
        )
        outcomes.append(outcome)
    return outcomes
