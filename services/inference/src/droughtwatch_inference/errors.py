"""Domain errors of the pipeline: adapters turn library errors into these so that logs, the
ledger and the state machine can all name them."""

from __future__ import annotations


class DroughtwatchError(Exception):
    """Base of every error the pipeline records. ``code`` is the name the ledger and the state
    machine's Fail state show; ``hint`` tells the user what to do next."""

    hint = ""

    @property
    def code(self) -> str:
        return type(self).__name__

    def describe(self) -> str:
        text = str(self)
        return f"{text} {self.hint}".strip() if self.hint and self.hint not in text else text


class ConfigurationError(DroughtwatchError):
    hint = "Fix the named DROUGHTWATCH_* environment variable and redeploy or rerun."


class DatabaseUnavailable(DroughtwatchError):
    hint = (
        "Check that the database is running and reachable (security groups, tunnel, "
        "DROUGHTWATCH_DATABASE_* settings); nothing was changed, rerun when it is back."
    )


class MigrationMismatch(DroughtwatchError):
    """The deploy asked the migrate function for other migrations than its image ships."""

    hint = (
        "The image is not the one built from this repository's migrations: run `pulumi up` "
        "again from the repository (it rebuilds the image and invokes the migrate function)."
    )


class MigrationFailed(DroughtwatchError):
    """The migrate function could not bring the schema up to date; the message names the cause
    and what to do (the deploy shows it)."""


class SchemaOutdated(DroughtwatchError):
    """The database's schema is older than this code: the migration has not run yet."""

    hint = (
        "Run the migration: `droughtwatch db migrate` locally, or `pulumi up` (it invokes the "
        "stack's migrate function) for a deployed stack."
    )


class SecretUnavailable(DroughtwatchError):
    hint = (
        "Check the secret's ARN (DROUGHTWATCH_DATABASE_SECRET_ARN, or GRAFANA_SECRET_ARN for the "
        "migrate function) and that the function's role may read it."
    )


class StorageError(DroughtwatchError):
    hint = (
        "Check the bucket name, the key and the access to it: the function's S3 permissions "
        "on AWS, the folder under DROUGHTWATCH_STORE_ROOT in local runs."
    )


class ObjectMissing(StorageError):
    """An S3 object the stage needs is gone (deleted between listing and reading)."""


class ObjectForbidden(StorageError):
    """S3 refused to read one object (403) that the ledger says exists: that file fails, the
    stage goes on. (A stage's role may list the buckets it reads, so a missing object is a 404,
    ObjectMissing; a 403 is a permission on this object.)"""

    hint = (
        "The function's role needs s3:GetObject on this key (its stage's read prefix), and "
        "the object must not be denied by the bucket policy or encrypted with a KMS key the "
        "role may not use; fix the permission, then retry the file."
    )


class ProductExpired(ObjectMissing):
    """A product the stage reads is gone because the stack's lifecycle rule expired it (the
    ledger recorded its expiry when it was written): not lost, it can be made again from the
    raw file. The file goes back to ``back_to``, the stage that writes the product."""

    hint = (
        "Nothing is lost: the file goes back to that stage, which rebuilds the product from "
        "its raw file at the next run (`droughtwatch run`); to keep such files longer, raise "
        "the stack's retention setting."
    )

    def __init__(self, message: str, back_to: str) -> None:
        super().__init__(message)
        self.back_to = back_to


class ModelNotFound(DroughtwatchError):
    hint = (
        "Upload model.json and the weights (model.pt2 or model.onnx) under the configured "
        "model prefix (see the README's model contract), or fix DROUGHTWATCH_MODEL_*."
    )


class InvalidModel(DroughtwatchError):
    hint = "Re-export the model following the model contract in the README."


class ModelInputMismatch(DroughtwatchError):
    """The processed data lacks a channel the model needs, has the wrong image size, or holds
    values the model cannot take."""

    hint = "Reprocess the data with a preprocess version that writes the channels the model needs."


class InvalidProcessedFile(DroughtwatchError):
    """A processed file cannot be read: another format version (written by an older or newer
    preprocess), or a damaged archive. Wraps the preprocess package's error, which names
    the file."""

    hint = "Reprocess its raw file so that the deployed preprocess rewrites it."


class ModelOutputError(DroughtwatchError):
    """The model answered some images of a file with non-finite scores or the wrong shape."""

    hint = (
        "Run `droughtwatch model check DIR --data RAW_FILE` on the model and this file, fix "
        "the model and publish it as a new version."
    )


class InvalidRawFile(DroughtwatchError):
    """A raw file cannot be decoded (corrupt, truncated, wrong bands). Wraps the preprocess
    package's error, whose message names the file and the record."""

    hint = "Re-upload a valid file under a new name or version; this version stays failed."


class InvalidPredictions(DroughtwatchError):
    hint = "The predictions file does not match the predictions schema; rerun Inference for it."


class InvalidLabelFile(DroughtwatchError):
    """A label file (labels/<name>: CSV or Parquet with columns id,label) is refused whole: not
    CSV or Parquet, empty, a column missing, or rows with bad values (the message names the
    file, each row and its value). Nothing of it is loaded; the other label files go on."""

    hint = (
        "Fix the named rows and upload the file again (`droughtwatch labels upload FILE`): new "
        "content is a new version, which the next run reads; this version stays failed."
    )


class InvalidEvent(DroughtwatchError):
    """A step's event is not what the state machine sends it (a hand-made invocation)."""
