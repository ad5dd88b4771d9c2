"""`kdet config convert`: a TF OD API pipeline.config as kdet's YAML config."""


def add_config_parser(subparsers):
    parser = subparsers.add_parser(
        "config",
        help="convert pipeline configs",
        description="Work with pipeline configs.",
    )
    commands = parser.add_subparsers(dest="config_command", metavar="CONFIG_COMMAND")
    commands.required = True
    convert = commands.add_parser(
        "convert",
        help="write a TF OD API pipeline.config as kdet's YAML config",
        description="Write a TF OD API pipeline.config as kdet's YAML config: the same fields "
        "and values, nested mappings for messages, lists for repeated fields. The file is "
        "checked first (the model is built), so a config kdet cannot run is reported instead.",
    )
    convert.add_argument("input", help="the pipeline.config (protobuf text) file")
    convert.add_argument("output", help="the YAML file to write")
    convert.set_defaults(run=run_config_convert)


def run_config_convert(args):
    import pathlib

    from kdet.configs import load_pipeline
    from kdet.configs.text_format import parse_file
    from kdet.configs.yaml_config import to_yaml

    load_pipeline(args.input)  # every field checked, as `kdet train` would
    output = pathlib.Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(f"# kdet YAML config converted from {args.input}\n" + to_yaml(
        parse_file(args.input)
    ))
    print(f"wrote {output}")
    return 0
