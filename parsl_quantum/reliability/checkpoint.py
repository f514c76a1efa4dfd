"""Checkpointed task results, so that a run killed part-way resumes without redoing work.

Parsl's memoizer identifies a task by a hash of its function and arguments
(:func:`parsl.dataflow.memoization.id_for_memo`). :class:`CheckpointMemoizer` appends every
finished task's result to ``RUN_DIR/parsl/NNN/checkpoint/tasks.pkl`` as a checksummed record
tagged with the digest of the run's template; a later run that loads those files gets each
already-finished task's result from the file instead of a worker, but only from records that
verify. Apps opt in with ``cache=True``.

The content hashes of the argument types Parsl does not know are in
:mod:`parsl_quantum.reliability.memo_ids`, registered when the memoizer first checks a task (and
by the modules defining the cutting apps and the mini-apps), so that applying reliability
settings before ``parsl.load`` imports no Qiskit.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import struct
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from parsl.dataflow.memoization import BasicMemoizer, CheckpointCommand
from parsl.utils import get_all_checkpoints

logger = logging.getLogger(__name__)


#: Each checkpoint record is framed: this marker, the payload's length (8 bytes, big-endian)
#: and the SHA-256 of the payload, then the payload (a pickled dict of the task's memo
#: ``hash``, the run's template digest as ``run``, and its ``result``).
RECORD_MARKER = b"PQCKPT1"
_HEADER = struct.Struct(f">{len(RECORD_MARKER)}sQ32s")


@dataclass(frozen=True)
class CheckpointRecord:
    """One verified checkpoint record.

    Attributes
    ----------
    hash : str
        The task's memo hash.
    run : str
        The digest of the template of the run that wrote it.
    result : Any
        The task's result.
    """

    hash: str
    run: str
    result: Any


def encode_record(record: CheckpointRecord) -> bytes:
    """One framed record: marker, length and checksum, then the pickled payload.

    Parameters
    ----------
    record : CheckpointRecord
        The record to frame.

    Returns
    -------
    bytes
        The frame, as appended to a checkpoint file.
    """
    payload = pickle.dumps({"hash": record.hash, "run": record.run, "result": record.result})
    return _HEADER.pack(RECORD_MARKER, len(payload), hashlib.sha256(payload).digest()) + payload


def _decode_payload(payload: bytes) -> CheckpointRecord | None:
    """The record a checksummed payload holds, or None when it is not a record's shape."""
    try:
        data = pickle.loads(payload)  # noqa: S301 - our own file, its checksum verified
    except Exception:  # a payload that passed its checksum yet does not unpickle here
        return None
    if not isinstance(data, dict) or set(data) != {"hash", "run", "result"}:
        return None
    if not isinstance(data["hash"], str) or not isinstance(data["run"], str):
        return None
    return CheckpointRecord(data["hash"], data["run"], data["result"])


def read_records(path: str | Path) -> tuple[list[CheckpointRecord], int]:
    """The records of a checkpoint file whose checksum holds, and how many stretches held none.

    A damaged record is skipped by searching for the next record marker, so one bad record
    costs only itself.

    Parameters
    ----------
    path : str or pathlib.Path
        The checkpoint file (``tasks.pkl``).

    Returns
    -------
    records : list of CheckpointRecord
        The records that verify, in file order.
    dropped : int
        How many stretches of the file held no verified record (a corrupted or wrong-shaped
        record, bytes of another format; a torn last record, as a driver killed while
        writing leaves it, is not counted).

    Raises
    ------
    OSError
        When the file cannot be read.
    """
    data = Path(path).read_bytes()
    records: list[CheckpointRecord] = []
    dropped = 0
    pos = 0
    while pos < len(data):
        if data.startswith(RECORD_MARKER, pos) and pos + _HEADER.size <= len(data):
            _, length, digest = _HEADER.unpack_from(data, pos)
            start = pos + _HEADER.size
            payload = data[start : start + length]
            if len(payload) == length and hashlib.sha256(payload).digest() == digest:
                record = _decode_payload(payload)
                if record is not None:
                    records.append(record)
                else:
                    dropped += 1
                pos = start + length
                continue
        following = data.find(RECORD_MARKER, pos + 1)
        if following < 0:
            torn = data.startswith(RECORD_MARKER, pos)
            dropped += 0 if torn else 1
            break
        dropped += 1
        pos = following
    return records, dropped


def template_digest(data: Mapping[str, Any]) -> str:
    """A stable digest of a template's data.

    Checkpoint records carry the digest of the run that wrote them, and a resumed run reuses
    only records of its own template.

    Parameters
    ----------
    data : Mapping[str, Any]
        The template's data.

    Returns
    -------
    str
        The SHA-256 hex digest of the data as canonical JSON.
    """
    text = json.dumps(data, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def resumable_checkpoints(parsl_run_dir: str | Path) -> list[str]:
    """Every checkpoint directory of earlier runs under a Parsl run directory.

    Parameters
    ----------
    parsl_run_dir : str or pathlib.Path
        The Parsl run directory (holding ``000``, ``001``, ...).

    Returns
    -------
    list[str]
        The checkpoint directories that hold a ``tasks.pkl``.
    """
    return [d for d in get_all_checkpoints(str(parsl_run_dir)) if os.path.exists(f"{d}/tasks.pkl")]


class CheckpointMemoizer(BasicMemoizer):
    """Parsl's memoizer checkpointing each task as it finishes, loading ``resume_from`` (and
    nothing else: a fresh run never picks up another run's results), and counting reuse.

    Records are framed and checksummed (:func:`encode_record`) and carry ``run_key``, the
    digest of the run's template; on loading, a record that fails its checksum, is not a
    record's shape, holds a non-finite number or comes from another template is dropped (and
    counted in ``dropped``), so its task is computed again rather than trusted.

    Parameters
    ----------
    resume_from : Sequence[str]
        Checkpoint directories of earlier runs to load (:func:`resumable_checkpoints`).
    run_key : str
        The digest of the run's template (:func:`template_digest`).
    """

    def __init__(self, resume_from: Sequence[str] = (), run_key: str = "") -> None:
        super().__init__(checkpoint_mode="task_exit", checkpoint_files=list(resume_from))
        self.run_key = run_key
        self.reused = 0
        self.dropped = 0
        self._count_lock = threading.Lock()
        self._write_lock = threading.Lock()

    def load_checkpoints(self, checkpointDirs: Sequence[str] | None) -> dict[str, Future[Any]]:  # noqa: N803 - Parsl's name
        """Verified records of ``checkpointDirs`` as Parsl's memo table.

        Parameters
        ----------
        checkpointDirs : Sequence[str] or None
            Checkpoint directories, each holding a ``tasks.pkl``.

        Returns
        -------
        dict[str, Future]
            Memo hash -> a done future holding the task's result.
        """
        table: dict[str, Future[Any]] = {}
        for directory in checkpointDirs or ():
            path = Path(directory) / "tasks.pkl"
            try:
                records, dropped = read_records(path)
            except OSError as exc:
                logger.warning("checkpoint %s unreadable: %s", path, exc)
                self.dropped += 1
                continue
            for record in records:
                if record.run != self.run_key or not _finite(record.result):
                    dropped += 1
                    continue
                future: Future[Any] = Future()
                future.set_result(record.result)
                table[record.hash] = future
            if dropped:
                logger.warning("dropped %d unverified record(s) of %s", dropped, path)
            self.dropped += dropped
        return table

    def checkpoint_one(self, cc: CheckpointCommand) -> None:
        """Append one finished task's framed record to this run's ``checkpoint/tasks.pkl``.

        A task that failed, or has no memo hash, is not recorded.

        Parameters
        ----------
        cc : CheckpointCommand
            Parsl's command for one finished task.
        """
        hashsum = cc.task_record["hashsum"]
        if cc.exception is not None or not hashsum:
            return
        frame = encode_record(CheckpointRecord(hashsum, self.run_key, cc.result))
        directory = Path(self.run_dir) / "checkpoint"
        with self._write_lock:
            directory.mkdir(parents=True, exist_ok=True)
            with (directory / "tasks.pkl").open("ab") as fh:
                fh.write(frame)
            self.checkpointed_tasks += 1

    def check_memo(self, task: Any) -> Future[Any] | None:
        """Parsl's memo lookup, counting each reuse in ``reused``.

        This package's content hashes are registered first
        (:mod:`parsl_quantum.reliability.memo_ids`, imported here rather than with this
        module, so that applying reliability settings before ``parsl.load`` imports no Qiskit).

        Parameters
        ----------
        task : Any
            Parsl's task record.

        Returns
        -------
        Future or None
            The memoized result, or None when the task must run.
        """
        from parsl_quantum.reliability import memo_ids  # noqa: F401 - registers on import

        found = super().check_memo(task)
        if found is not None:
            with self._count_lock:
                self.reused += 1
        return found


def _finite(result: Any) -> bool:
    """False when a result holds a NaN or infinite number where its values are kept (a float,
    an array, or an object's ``values`` array): such a record cannot be a task's answer."""
    values = getattr(result, "values", result)
    if isinstance(values, float | np.floating | np.ndarray):
        array = np.asarray(values)
        return not np.issubdtype(array.dtype, np.number) or bool(np.isfinite(array).all())
    return True
