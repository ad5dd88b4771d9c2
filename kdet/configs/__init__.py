"""Pipeline configs: TF OD API pipeline.config files and kdet's own YAML configs."""
