"""Data layer: TF OD API tf.train.Example codec, label maps, TFRecords, converters, input pipeline."""
