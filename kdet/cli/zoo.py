"""`kdet zoo`: list the zoo models."""


def add_zoo_parser(subparsers):
    parser = subparsers.add_parser(
        "zoo", help="list the zoo models", description="List the pretrained models of the zoo."
    )
    parser.set_defaults(run=run_zoo)


def run_zoo(args):
    import kdet.zoo

    for name in kdet.zoo.list():
        entry = kdet.zoo.get_entry(name)
        print(f"{name}: {entry.metadata.get('description', '')}".rstrip(": "))
    return 0
