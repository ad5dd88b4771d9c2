"""`kdet zoo`: list the zoo models: kdet's own, and the TF OD API's TF1 and TF2 detection zoos."""

SOURCES = ("kdet", "tf1", "tf2", "all")


def add_zoo_parser(subparsers):
    parser = subparsers.add_parser(
        "zoo",
        help="list the zoo models",
        description=(
            "List the pretrained models of the zoo: kdet's own (default), or the TF OD API's "
            "TF1 / TF2 detection zoos with their source's mAP, input size and whether kdet can "
            "load them. mAP and speed are the TF OD API zoo pages' numbers, not measured by "
            "kdet."
        ),
    )
    parser.add_argument(
        "--source", choices=SOURCES, default="kdet",
        help="which models: kdet's own (default), tf1, tf2, or all",
    )
    parser.add_argument(
        "--buildable", action="store_true",
        help="only the models kdet can build today (kdet.zoo.TFZooEntry.kdet_can_build)",
    )
    parser.set_defaults(run=run_zoo)


def run_zoo(args):
    import kdet.zoo

    if args.source == "kdet" and not args.buildable:
        for name in kdet.zoo.list():
            entry = kdet.zoo.get_entry(name)
            print(f"{name}: {entry.metadata.get('description', '')}".rstrip(": "))
        tf_count = len(kdet.zoo.list("tf1")) + len(kdet.zoo.list("tf2"))
        print(f"(and {tf_count} TF OD API detection zoo models: kdet zoo --source tf1|tf2|all)")
        return 0
    rows = [("name", "source", "dataset", "mAP (source's numbers)", "input", "kdet builds")]
    for name in kdet.zoo.list(args.source):
        entry = kdet.zoo.get_entry(name)
        if isinstance(entry, kdet.zoo.TFZooEntry):
            row = (name, entry.source, entry.dataset,
                   f"{entry.metric} {entry.columns[entry.metric] or '-'}",
                   entry.input_size_text, "yes" if entry.kdet_can_build else "no")
        else:
            metadata = entry.metadata
            metric = (metadata.get("metrics") or [{}])[0]
            size = metadata.get("input_size")
            row = (name, "kdet", metadata.get("dataset", "?").split(" (")[0][:30],
                   f"{metric.get('name', '')} {metric.get('value', '-')}".strip(),
                   "x".join(map(str, size)) if size else "?", "yes")
        if row[-1] == "yes" or not args.buildable:
            rows.append(row)
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
    print(f"{len(rows) - 1} models. mAP: the zoo pages' numbers (TF OD API), not measured by "
          "kdet; input: height x width, or shorter-longer side when the aspect ratio is kept.")
    return 0
