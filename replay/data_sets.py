"""Where the public data sets are: `$PPG_STREAM_DATA`, else `../shared/data` beside the checkout.

The recordings are never part of the repository (their terms forbid it for IEEE SPC 2015), so tests,
benchmarks and `ppg-distill` look for them in one folder that a user or CI points at with an
environment variable; each data set has its own subfolder there. The table says where each comes from,
so an error about missing data can say where to get it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DATA_ENV = "PPG_STREAM_DATA"
_CHECKOUT = Path(__file__).resolve().parent.parent  # replay/ sits at the repository root


@dataclass(frozen=True)
class DataSet:
    folder: str  # its subfolder of the data root
    name: str
    source: str  # where to get it
    terms: str


IEEE_SPC2015 = DataSet(
    "ieee-spc2015", "IEEE SPC 2015 (12 training recordings, DATA_*_TYPE*.mat with *_BPMtrace.mat)",
    "https://sites.google.com/site/researchbyzhang/ieeespcup2015 (Zhang, Pi, Liu, IEEE TBME 2015)",
    "academic research only; never copied into this repository")
PPG_DALIA = DataSet(
    "ppg-dalia", "PPG-DaLiA (15 subjects, S*.pkl)",
    "https://archive.ics.uci.edu/dataset/495/ppg+dalia (Reiss et al., Sensors 2019)",
    "the terms on its UCI Machine Learning Repository page")
WRIST_PPG_EXERCISE = DataSet(
    "wrist-ppg-exercise", "Wrist PPG During Exercise (walking, running, two kinds of cycling; ECG reference)",
    "https://physionet.org/content/wrist/1.0.0/ (Jarchi, Casson, Data 2017)",
    "open, with attribution; its PhysioNet page is the authority")


def data_root() -> Path:
    """`$PPG_STREAM_DATA` if set, else `../shared/data` next to the repository root."""
    given = os.environ.get(DATA_ENV)
    return Path(given).expanduser() if given else _CHECKOUT.parent / "shared" / "data"


def data_dir(data_set: DataSet) -> Path:
    return data_root() / data_set.folder


def where_to_get(data_set: DataSet) -> str:
    """One clause for an error message: where the data comes from and how to point us at it."""
    return f"get {data_set.name} from {data_set.source}, then set {DATA_ENV} to the folder holding {data_set.folder}/"
