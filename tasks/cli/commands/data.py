"""``convforge data pack SRC OUT --shards N``: write a dataset as TFRecord shards."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("data", help="dataset tools (pack into TFRecord shards)",
                       description="Dataset tools.")
    tools = p.add_subparsers(dest="data_command", metavar="TOOL")
    tools.required = True
    pack = tools.add_parser(
        "pack", help="write SRC as TFRecord shards in OUT",
        description="Write a dataset as TFRecord shards (read back interleaved and in parallel by "
                    "pipelines.tfrecord.read_shards). SRC is a catalog name (fashion_mnist, digits), "
                    "folder:PATH (one subfolder per class), csv:PATH (a path,label manifest) or a folder. "
                    "Corrupt, truncated and empty images are skipped and counted in OUT/dataset.json.",
    )
    pack.add_argument("src", help="catalog name, folder:PATH, csv:PATH or a folder")
    pack.add_argument("out", help="output folder for the shards")
    pack.add_argument("--shards", type=int, default=8, help="number of shard files (default 8)")
    pack.add_argument("--split", choices=["train", "test"], default="train", help="catalog split to pack (default train)")
    pack.set_defaults(func=pack_command)


def pack_command(args) -> int:
    from pathlib import Path

    from tasks.core.errors import UserError, clean_message

    if args.shards < 1:
        raise UserError(f"--shards must be at least 1; received {args.shards}")
    from pipelines import tfrecord

    spec = args.src
    kind, _, rest = spec.partition(":")
    try:
        if kind in ("folder", "csv") or Path(spec).is_dir():
            from pipelines import sources

            files = sources.csv_manifest(rest) if kind == "csv" else sources.image_folder(rest if kind == "folder" else spec)
            items = tfrecord.files_items(files.paths, files.labels)
            paths = tfrecord.write_shards(items, args.out, args.shards, files.class_names, skipped=files.skipped)
        else:
            from pipelines.catalog import load_arrays

            data = load_arrays(spec)
            x, y = (data.x_train, data.y_train) if args.split == "train" else (data.x_test, data.y_test)
            paths = tfrecord.write_shards(tfrecord.array_items(x, y), args.out, args.shards, data.class_names,
                                          channels=int(x.shape[-1]), image_size=tuple(x.shape[1:3]))
    except (FileNotFoundError, ValueError, KeyError) as err:
        raise UserError(f"data pack {spec!r}: {clean_message(err)}") from None
    import json

    meta = json.loads((Path(args.out) / tfrecord.META).read_text())
    print(f"wrote {meta['count']} images in {len(paths)} shard(s) under {args.out}; skipped {meta['skipped'] or 'none'}")
    return 0
