"""``synthaug convert``: public data sets, image folders and 3D volumes -> nnU-Net v2 raw folders."""
from __future__ import annotations

from pathlib import Path

import click

from .common import _friendly


def _say_converted(out: Path) -> None:
    """What a conversion made (stderr), then the folder (stdout), as every converter ends."""
    from ..io.folders import conversion_summary

    for line in conversion_summary(out):
        click.echo(f"synthaug: {line}", err=True)
    click.echo(str(out))


@click.group(short_help="Public data sets and 3D volumes -> nnU-Net v2 raw folders (2D PNG, labels {0,1}).")
def convert():
    """Convert a public data set, or 3D volumes sliced to 2D, to an nnU-Net v2 raw folder (2D PNG, labels {0,1})."""


def _source_and_destination(name: str, size_help: str = "Resize every case to SIZE x SIZE."):
    """SRC, DST_RAW, --dataset-id, --name and --size, as every converter takes them."""

    def deco(f):
        f = click.option("--size", type=int, default=None, help=size_help)(f)
        f = click.option("--name", default=name, show_default=True, help="Dataset name after DatasetNNN_.")(f)
        f = click.option("--dataset-id", type=int, required=True, help="nnU-Net dataset id (1-999).")(f)
        f = click.argument("dst_raw", type=click.Path(path_type=Path))(f)
        return click.argument("src", type=click.Path(path_type=Path))(f)

    return deco


# short_help: click cuts a docstring at its first period ("et al.") or about 45 characters
@convert.command("busi", short_help="BUSI release -> DST_RAW/DatasetNNN_BUSI (train split; test split to imagesTs).")
@_source_and_destination("BUSI", "Resize every case to SIZE x SIZE (e.g. 128, 256).")
@click.option("--split", "split_file", type=click.Path(path_type=Path), default=None,
              help="Split JSON (default: SRC/split.json).")
@_friendly
def convert_busi_cmd(src, dst_raw, dataset_id, name, size, split_file):
    """BUSI (Al-Dhabyani et al. 2020): SRC is the folder holding Dataset_BUSI_with_GT and split.json."""
    from ..io.public_sets import convert_busi

    _say_converted(convert_busi(src, dst_raw, dataset_id=dataset_id, name=name, size=size, split_file=split_file))


@convert.command("folder", short_help="Image folder + mask folder (+ CSV of tumour types) -> DST_RAW/DatasetNNN_NAME.")
@click.argument("images", type=click.Path(path_type=Path))
@click.argument("masks", type=click.Path(path_type=Path))
@click.argument("dst_raw", type=click.Path(path_type=Path))
@click.option("--dataset-id", type=int, required=True, help="nnU-Net dataset id (1-999).")
@click.option("--name", default="Custom", show_default=True, help="Dataset name after DatasetNNN_ (also the case prefix).")
@click.option("--labels", type=click.Path(path_type=Path), default=None,
              help="CSV of case,type rows (type benign or malignant; empty for unknown). Without it: no types.")
@click.option("--size", type=int, default=None, help="Resize every case to SIZE x SIZE (e.g. 128).")
@click.option("--mask-suffix", default="_mask", show_default=True,
              help="Mask of a.png is a<SUFFIX>.png (needed when MASKS is the IMAGES folder); a.png also matches.")
@click.option("--mask-threshold", type=float, default=None,
              help="Binarise masks with more than two values (e.g. JPEG): lesion = value > THRESHOLD.")
@click.option("--channel-name", default="ultrasound", show_default=True, help="nnU-Net channel name of the images.")
@click.option("--keep-aspect", is_flag=True,
              help="With --size: scale the longer side to SIZE and pad the other with black (default: stretch).")
@_friendly
def convert_folder_cmd(images, masks, dst_raw, dataset_id, name, labels, size, mask_suffix, mask_threshold,
                       channel_name, keep_aspect):
    """IMAGES and MASKS folders whose files match by name (png/jpg/bmp/tif; MASKS may be IMAGES itself).

    Says what it made on stderr (cases, types, empty masks, resizing), then prints the folder."""
    from ..io.folders import convert_folder

    if keep_aspect and size is None:
        raise click.BadParameter("--keep-aspect needs --size (the square side to pad to)", param_hint="--keep-aspect")
    out = convert_folder(images, masks, dst_raw, dataset_id=dataset_id, name=name, labels=labels, size=size,
                         mask_suffix=mask_suffix, mask_threshold=mask_threshold, channel_name=channel_name,
                         keep_aspect=keep_aspect)
    _say_converted(out)


@convert.command("stu", short_help="STU-Hospital -> a test-only raw folder (imagesTs/labelsTs).")
@_source_and_destination("STU")
@_friendly
def convert_stu_cmd(src, dst_raw, dataset_id, name, size):
    """STU-Hospital (Zhuang et al. 2019): SRC holds Hospital/ (or is it). Written as a test set."""
    from ..io.public_sets import convert_stu

    _say_converted(convert_stu(src, dst_raw, dataset_id=dataset_id, name=name, size=size))


@convert.command("volumes", short_help="3D volumes + lesion masks (NIfTI, DICOM, nnU-Net 3D raw) -> "
                                      "a 2D raw folder of lesion slices.")
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst_raw", type=click.Path(path_type=Path))
@click.option("--dataset-id", type=int, required=True, help="nnU-Net dataset id (1-999).")
@click.option("--name", default="DBT", show_default=True, help="Dataset name after DatasetNNN_.")
@click.option("--pair", "pairs", nargs=2, multiple=True, type=click.Path(path_type=Path),
              help="IMAGE MASK volume pair (NIfTI file or DICOM folder); repeatable. Without it SRC is an nnU-Net 3D raw folder.")
@click.option("--axis", type=int, default=0, show_default=True, help="Slicing axis of the (z, y, x) volume.")
@click.option("--negative-fraction", type=float, default=0.0, show_default=True,
              help="Share of lesion-free slices to keep as well.")
@click.option("--size", type=int, default=None, help="Resize every slice to SIZE x SIZE.")
@click.option("--seed", type=int, default=0, show_default=True)
@_friendly
def convert_volumes_cmd(src, dst_raw, dataset_id, name, pairs, axis, negative_fraction, size, seed):
    """3D volumes with lesion masks (DBT, ...) -> 2D raw folder of the slices that contain lesion.

    SRC is an nnU-Net v2 3D raw folder; with --pair, SRC is ignored (pass '-')."""
    from ..io.volumes import volumes_to_raw

    source = list(pairs) if pairs else src
    out = volumes_to_raw(source, dst_raw, dataset_id=dataset_id, name=name, size=size, axis=axis,
                         negative_fraction=negative_fraction, seed=seed)
    click.echo(str(out))
