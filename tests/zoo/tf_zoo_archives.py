"""Small TF OD API zoo-like archives and a loopback HTTP server for the TF zoo tests (offline)."""

import contextlib
import http.server
import io
import pathlib
import socket
import tarfile
import threading

# A small SSD MobileNetV2 (depth multiplier 0.25, 64x64 input, 3 classes): the pipeline.config
# of the test archives, built by kdet in well under a second.
TINY_PIPELINE_CONFIG = """
model {
  ssd {
    num_classes: 3
    image_resizer { fixed_shape_resizer { height: 64 width: 64 } }
    feature_extractor {
      type: "ssd_mobilenet_v2_keras"
      depth_multiplier: 0.25
      min_depth: 8
      conv_hyperparams {
        regularizer { l2_regularizer { weight: 4e-05 } }
        initializer { truncated_normal_initializer { stddev: 0.03 } }
        activation: RELU_6
        batch_norm { decay: 0.97 scale: true epsilon: 0.001 }
      }
      override_base_feature_extractor_hyperparams: true
    }
    box_coder { faster_rcnn_box_coder { y_scale: 10.0 x_scale: 10.0 height_scale: 5.0
                                         width_scale: 5.0 } }
    matcher { argmax_matcher { matched_threshold: 0.5 unmatched_threshold: 0.5 } }
    similarity_calculator { iou_similarity { } }
    box_predictor {
      convolutional_box_predictor {
        conv_hyperparams {
          regularizer { l2_regularizer { weight: 4e-05 } }
          initializer { random_normal_initializer { stddev: 0.01 } }
          activation: RELU_6
          batch_norm { decay: 0.97 scale: true epsilon: 0.001 }
        }
        kernel_size: 1
        class_prediction_bias_init: -4.6
      }
    }
    anchor_generator { ssd_anchor_generator { num_layers: 6 min_scale: 0.2 max_scale: 0.95
                                             aspect_ratios: 1.0 aspect_ratios: 2.0 } }
    post_processing {
      batch_non_max_suppression { score_threshold: 1e-08 iou_threshold: 0.6
                                  max_detections_per_class: 10 max_total_detections: 10 }
      score_converter: SIGMOID
    }
    loss {
      localization_loss { weighted_smooth_l1 { } }
      classification_loss { weighted_sigmoid_focal { gamma: 2.0 alpha: 0.75 } }
    }
    encode_background_as_zeros: true
  }
}
train_config {
  batch_size: 4
  use_bfloat16: true
  fine_tune_checkpoint: "PATH_TO_BE_CONFIGURED"
  fine_tune_checkpoint_type: "detection"
  optimizer { momentum_optimizer { learning_rate { constant_learning_rate {
    learning_rate: 0.01 } } momentum_optimizer_value: 0.9 } }
}
"""


def tf2_archive_files(stem):
    """`{member name: bytes}` of a TF2 zoo archive's layout (checkpoint bytes are placeholders:
    the download, unpacking and locating code does not read them)."""
    return {
        f"{stem}/pipeline.config": TINY_PIPELINE_CONFIG.encode(),
        f"{stem}/checkpoint/checkpoint": (
            b'model_checkpoint_path: "ckpt-0"\nall_model_checkpoint_paths: "ckpt-0"\n'
        ),
        f"{stem}/checkpoint/ckpt-0.index": b"index bytes",
        f"{stem}/checkpoint/ckpt-0.data-00000-of-00001": bytes(range(256)) * 64,
        f"{stem}/saved_model/saved_model.pb": b"saved model bytes",
    }


def write_tar_gz(path, files, extra_members=()):
    """Writes a `.tar.gz` of `files` (`{name: bytes}`, folders implied), then each
    `tarfile.TarInfo` of `extra_members` (links, devices, odd names) as given."""
    path = pathlib.Path(path)
    with tarfile.open(path, "w:gz") as tar:
        folders = sorted({name.rsplit("/", i)[0] for name in files
                          for i in range(1, name.count("/") + 1)})
        for folder in folders:
            info = tarfile.TarInfo(folder)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra_members:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return path


def member(name, kind=tarfile.REGTYPE, linkname="", size=0):
    """A `tarfile.TarInfo` of `kind` (e.g. `tarfile.SYMTYPE`)."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.size = size
    return info


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        files, lengths = self.server.files, self.server.lengths
        if self.path not in files:
            self.send_error(404)
            return
        data = files[self.path]
        self.send_response(200)
        self.send_header("Content-Length", str(lengths.get(self.path, len(data))))
        self.end_headers()
        self.wfile.write(data)
        self.server.requests.append(self.path)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(files, lengths=None):
    """A loopback HTTP server of `files` (`{url path: bytes}`) in a thread; yields its base URL
    (`http://127.0.0.1:PORT`) and the list of paths requested. `lengths` overrides the
    `Content-Length` sent for a path (a server that announces more than it sends)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.files, server.lengths, server.requests = files, lengths or {}, []
    server.timeout = 5
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def closed_port_url(path="/model.tar.gz"):
    """A loopback URL nothing listens on (connection refused at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"
