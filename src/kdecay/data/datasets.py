"""Static facts about the supported datasets (CIFAR-10 and CIFAR-100).

Everything that depends on the official archive layout lives here, so that the download,
preparation and synthetic-data code agree on file names, checksums and pickle keys.
"""

from __future__ import annotations

from dataclasses import dataclass

from kdecay.checks import DataError

__all__ = [
    "DATASETS",
    "PADDING_MODES",
    "DataError",
    "DatasetInfo",
    "UnknownDatasetError",
    "get_dataset_info",
]


PADDING_MODES = ("zeros", "mean", "reflect")
"""How the 4-pixel border is filled, per row after its reference code: ``zeros`` black (0 on the
raw pixels, torchvision's RandomCrop), ``mean`` the mean colour (0 after normalisation: the
codes of He et al. (fb.resnet.torch) and DenseNet normalise, then zero-pad; SGDR's code pads
after subtracting the mean), ``reflect`` mirrored (WRN's code)."""


class UnknownDatasetError(DataError, ValueError):
    """An unsupported dataset name; both a :class:`DataError` and a :class:`ValueError`."""


@dataclass(frozen=True)
class DatasetInfo:
    """Where to get a dataset and how its official ``python`` archive is laid out.

    Attributes:
        title: printed name (``CIFAR-10``).
        archive: file name of the official archive (also the name used in ``raw_dir``).
        url: official download address.
        md5: md5 hex digest of the official archive.
        base_folder: top-level folder inside the archive.
        num_classes: number of (fine) classes.
        train_files: pickle files holding the training set, in order.
        test_files: pickle files holding the test set.
        meta_file: pickle file with the class names.
        labels_key: key of the label list in each data pickle.
        label_names_key: key of the class-name list in the meta pickle.
        train_images: images in the official training set (one epoch).
        test_images: images in the official test set.
    """

    title: str
    archive: str
    url: str
    md5: str
    base_folder: str
    num_classes: int
    train_files: tuple[str, ...] = ()
    test_files: tuple[str, ...] = ()
    meta_file: str = ""
    labels_key: bytes = b"labels"
    label_names_key: bytes = b"label_names"
    train_images: int = 50_000
    test_images: int = 10_000


DATASETS: dict[str, DatasetInfo] = {
    "cifar10": DatasetInfo(
        title="CIFAR-10",
        archive="cifar-10-python.tar.gz",
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a",
        base_folder="cifar-10-batches-py",
        num_classes=10,
        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test_files=("test_batch",),
        meta_file="batches.meta",
        labels_key=b"labels",
        label_names_key=b"label_names",
    ),
    "cifar100": DatasetInfo(
        title="CIFAR-100",
        archive="cifar-100-python.tar.gz",
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        md5="eb9058c3a382ffc7106e4002c42a8d85",
        base_folder="cifar-100-python",
        num_classes=100,
        train_files=("train",),
        test_files=("test",),
        meta_file="meta",
        labels_key=b"fine_labels",
        label_names_key=b"fine_label_names",
    ),
}


def get_dataset_info(name: str) -> DatasetInfo:
    """Return the :class:`DatasetInfo` of ``name`` (``"cifar10"`` or ``"cifar100"``).

    Raises:
        UnknownDatasetError: (a ``ValueError`` and a ``DataError``) for any other name.
    """
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        choices = ", ".join(sorted(DATASETS))
        raise UnknownDatasetError(f"unknown dataset {name!r}: choose one of {choices}") from None
