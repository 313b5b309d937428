"""mpnas - Python bindings for libmpnas (multi-path neural architecture search).

Standard library only (ctypes). numpy is not needed, but numpy arrays (and any other
object with the buffer protocol: bytes, bytearray, memoryview, array.array) are
accepted wherever images or labels are expected, and when numpy is installed the
functions returning arrays of numbers return numpy arrays (numpy=False: lists). Images
are checked against the space's input shape and labels against the images
(docs/PYTHON.md, "Images and labels").
mpnas.image_folder(path, size) loads a folder of images (one subfolder per class) with
Pillow.

Finding the library, in this order: the environment variable MPNAS_LIBRARY (a path to
libmpnas.so; then nothing else is tried), a copy bundled in this package
(mpnas/libmpnas.so), the source tree's build output (../../lib/libmpnas.so from this
file), the libdir of an installed mpnas.pc (`make install`; pkg-config --variable=libdir
mpnas, so PKG_CONFIG_PATH reaches any PREFIX), ctypes.util.find_library("mpnas").
mpnas.load_library(path) picks one explicitly before first use.

Usage::

    import mpnas

    with mpnas.Context(threads=2, seed=1) as ctx:
        space = mpnas.Space(ctx, "32px")               # 32x32x3 inputs, 10 layers
        sn = mpnas.Supernet(space)
        for name, classes, images, labels in my_domains:  # uint8 NHWC + int labels
            sn.add_domain(name, classes)
            sn.set_data(name, images, labels)
        sn.configure(steps=200, valid_batch=32)
        sn.search(progress=lambda step, total: print(step, total))
        for d in sn.domains:
            print(d, sn.path_string(d))

        model = mpnas.Model.from_supernet(sn)          # copies names, paths and data
        model.configure(steps=500, batch=16)
        model.train()
        print(model.evaluate("digits", test_images, test_labels))  # (top1, loss)
        model.save("model.mpnas")

        m2 = mpnas.Model.load(ctx, "model.mpnas")
        with m2.predictor() as p:
            probs = p.run("digits", test_images, output="probabilities")

Errors: every failing call raises MpnasError (or a subclass per status: OutOfRangeError,
UnknownParameterError, ...) with .status (the negative code), .name ("MPNAS_E_...") and
.message (the library's detail, mpnas_context_last_error). Every handle has close() and
works as a context manager; a handle keeps its parents alive (a Supernet holds its
Context, a Predictor its Model), and closing a parent closes its children first.
See docs/PYTHON.md for the whole interface.
"""

import array
import ctypes
import ctypes.util
import difflib
import glob
import numbers
import os
import signal
import subprocess
import sys
import threading
import weakref
from collections import namedtuple

__version__ = "0.1.0"  # the library's version it was written for (include/mpnas.h)

__all__ = [
    "MpnasError", "InvalidArgumentError", "UnknownParameterError", "OutOfRangeError",
    "NoMemoryError", "UnsupportedError", "IOFailureError", "CorruptError", "VersionError",
    "CancelledError", "StateError", "IncompatibleError", "InternalError",
    "load_library", "library_path", "version", "version_number", "isa_supported",
    "status_string", "Context", "Space", "Controller", "Supernet", "Model", "Predictor",
    "OpInfo", "Evaluation", "ParamInfo", "param_info", "FolderImages", "image_folder",
]

# ---- Constants (mirroring include/mpnas.h) ------------------------------------------------

OK = 0
STATUS_NAMES = {
    0: "MPNAS_OK",
    -1: "MPNAS_E_INVALID_ARGUMENT",
    -2: "MPNAS_E_UNKNOWN_PARAMETER",
    -3: "MPNAS_E_OUT_OF_RANGE",
    -4: "MPNAS_E_NO_MEMORY",
    -5: "MPNAS_E_UNSUPPORTED",
    -6: "MPNAS_E_IO",
    -7: "MPNAS_E_CORRUPT",
    -8: "MPNAS_E_VERSION",
    -9: "MPNAS_E_CANCELLED",
    -10: "MPNAS_E_STATE",
    -11: "MPNAS_E_INCOMPATIBLE",
    -12: "MPNAS_E_INTERNAL",
}
for _code, _name in STATUS_NAMES.items():
    globals()[_name[len("MPNAS_"):]] = _code  # E_INVALID_ARGUMENT = -1, ...

# Named values of enumerations, by the parameter they belong to. Every value is also a
# module constant: mpnas.PRESET_32PX, mpnas.ACT_HSWISH, mpnas.METHOD_INDEPENDENT, ...
_ENUMS = {
    "isa": {"auto": 0, "scalar": 1, "avx2": 2, "neon": 3},
    "log_level": {"none": 0, "error": 1, "warning": 2, "info": 3, "debug": 4},
    "activation": {"none": 0, "relu": 1, "relu6": 2, "hswish": 3, "sigmoid": 4,
                   "hsigmoid": 5},
    "preset": {"empty": 0, "32px": 1, "mobilenet_v3": 2, "mbv2_9": 3},
    "se_mode": {"never": 0, "choice": 1, "always": 2},
    "method": {"mpnas": 0, "independent": 1, "multi_head": 2, "single_path": 3},
    "cost": {"none": 0, "macs": 1, "params": 2, "latency": 3},
    "reward": {"abs": 0, "mnas": 1},
    "split": {"train": 0, "valid": 1},
    "dtype": {"u8": 0, "f32": 1, "u8_grey": 2, "f32_grey": 3},
    "optimizer": {"sgd": 0, "rmsprop": 1, "adam": 2},
    "abdp_sampling": {"balanced": 0, "proportional": 1},
    "abdp_signal": {"none": 0, "loss": 1, "kpi": 2, "boost": 3},
    "output": {"logits": 0, "probabilities": 1},
    "precision": {"float32": 0, "int8": 1},
}
_ENUM_PREFIX = {
    "isa": "ISA_", "log_level": "LOG_", "activation": "ACT_", "preset": "PRESET_",
    "se_mode": "SE_", "method": "METHOD_", "cost": "COST_", "reward": "REWARD_",
    "split": "SPLIT_", "dtype": "DTYPE_", "optimizer": "OPTIMIZER_",
    "abdp_sampling": "ABDP_SAMPLE_", "abdp_signal": "ABDP_SIGNAL_", "output": "OUTPUT_",
    "precision": "PRECISION_",
}
for _kind, _values in _ENUMS.items():
    for _name, _value in _values.items():
        globals()[_ENUM_PREFIX[_kind] + _name.upper()] = _value

_STATS = {
    "train_loss": 1, "valid_accuracy": 2, "reward": 3, "cost": 4, "loss_weight": 5,
    "train_size": 6, "valid_size": 7, "macs": 8, "params": 9, "batch_images": 10,
}
for _name, _code in _STATS.items():
    globals()["STAT_" + _name.upper()] = _code
del _code, _name, _kind, _values, _value

# The handles with parameters: what -> (MPNAS_HANDLE_* kind, the handle named in messages).
# Their parameters (names, codes, types, ranges) are the library's: see _params.
_HANDLE_KINDS = {
    "context": (1, "Context"),
    "space": (2, "Space"),
    "search": (3, "Supernet"),
    "model": (4, "Model"),
    "domain": (5, "Model domain"),
}

OpInfo = namedtuple("OpInfo", "kernel expansion se")
OpInfo.__doc__ = "An op of a searchable layer: kernel 0 and expansion 0 for `zero` (skip)."
Evaluation = namedtuple("Evaluation", "top1 loss")
Evaluation.__doc__ = "Top-1 accuracy (0..1) and mean cross-entropy of labelled images."


# ---- Errors -------------------------------------------------------------------------------

class MpnasError(Exception):
    """A libmpnas call failed: .status (negative code), .name ("MPNAS_E_..."), .message
    (the library's detail message, or the status's generic description) and .function
    (the C function that failed, when known)."""

    def __init__(self, status, message="", function=None):
        self.status = int(status)
        self.name = STATUS_NAMES.get(self.status, "MPNAS_E_UNKNOWN(%d)" % self.status)
        self.message = message or _generic(self.status)
        self.function = function
        Exception.__init__(self, self.status, self.message)

    def __str__(self):
        where = "%s: " % self.function if self.function else ""
        return "%s%s: %s" % (where, self.name, self.message)


class InvalidArgumentError(MpnasError, ValueError):
    """MPNAS_E_INVALID_ARGUMENT: a NULL handle or pointer, inconsistent sizes, a closed
    handle, a buffer of the wrong size or element type."""


class UnknownParameterError(MpnasError, LookupError):
    """MPNAS_E_UNKNOWN_PARAMETER: a parameter or enum value the library does not know."""


class OutOfRangeError(MpnasError, ValueError):
    """MPNAS_E_OUT_OF_RANGE: a value outside its documented range."""


class NoMemoryError(MpnasError, MemoryError):
    """MPNAS_E_NO_MEMORY: an allocation failed."""


class UnsupportedError(MpnasError):
    """MPNAS_E_UNSUPPORTED: not available here (an ISA this CPU lacks, or a function
    this build of the library does not export)."""


class IOFailureError(MpnasError):
    """MPNAS_E_IO: a file could not be opened, read or written."""


class CorruptError(MpnasError):
    """MPNAS_E_CORRUPT: a file or buffer is malformed."""


class VersionError(MpnasError):
    """MPNAS_E_VERSION: a file's format version is not supported."""


class CancelledError(MpnasError):
    """MPNAS_E_CANCELLED: a progress callback asked to stop (call again to resume)."""


class StateError(MpnasError):
    """MPNAS_E_STATE: the call is not valid in the handle's current state."""


class IncompatibleError(MpnasError):
    """MPNAS_E_INCOMPATIBLE: e.g. a checkpoint from a different search space."""


class InternalError(MpnasError):
    """MPNAS_E_INTERNAL: a bug in libmpnas."""


_ERROR_CLASSES = {
    -1: InvalidArgumentError, -2: UnknownParameterError, -3: OutOfRangeError,
    -4: NoMemoryError, -5: UnsupportedError, -6: IOFailureError, -7: CorruptError,
    -8: VersionError, -9: CancelledError, -10: StateError, -11: IncompatibleError,
    -12: InternalError,
}


def _error(status, message="", function=None):
    return _ERROR_CLASSES.get(int(status), MpnasError)(status, message, function)


def _generic(status):
    if _lib is not None:
        return _lib.mpnas_status_string(int(status)).decode("utf-8", "replace")
    return STATUS_NAMES.get(int(status), "unknown status")


# ---- Loading the library and declaring its functions --------------------------------------

_c_i32, _c_i64, _c_u32, _c_size = ctypes.c_int32, ctypes.c_int64, ctypes.c_uint32, ctypes.c_size_t
_c_double, _c_float, _c_vp, _c_cp = ctypes.c_double, ctypes.c_float, ctypes.c_void_p, ctypes.c_char_p
_P = ctypes.POINTER
_S = _c_i32  # mpnas_status

_SEARCH_PROGRESS_FN = ctypes.CFUNCTYPE(_c_i32, _c_vp, _c_vp, _c_i64, _c_i64)
# mpnas_allreduce_fn: (user, buf, count, dtype) -> 0 or a failing code
_ALLREDUCE_FN = ctypes.CFUNCTYPE(_c_i32, _c_vp, _c_vp, _c_i64, _c_i32)
_TRAIN_PROGRESS_FN = ctypes.CFUNCTYPE(_c_i32, _c_vp, _c_vp, _c_i64, _c_i64)
_LOG_FN = ctypes.CFUNCTYPE(None, _c_vp, _c_i32, _c_cp)

# name: (restype, argtypes). Pointers to data are passed as c_void_p (addresses).
_PROTOTYPES = {
    "mpnas_version_number": (_c_u32, []),
    "mpnas_version_string": (_c_cp, []),
    "mpnas_status_string": (_c_cp, [_S]),
    "mpnas_isa_supported": (_c_i32, [_c_i32]),
    "mpnas_context_create": (_S, [_P(_c_vp)]),
    "mpnas_context_free": (None, [_c_vp]),
    "mpnas_context_set_int": (_S, [_c_vp, _c_i32, _c_i64]),
    "mpnas_context_get_int": (_S, [_c_vp, _c_i32, _P(_c_i64)]),
    "mpnas_context_set_log_callback": (_S, [_c_vp, _LOG_FN, _c_vp]),
    "mpnas_context_set_collective": (_S, [_c_vp, _ALLREDUCE_FN, _c_vp, _c_i32, _c_i32]),
    "mpnas_context_last_error": (_c_cp, [_c_vp]),
    "mpnas_context_last_status": (_S, [_c_vp]),
    "mpnas_context_clear_error": (None, [_c_vp]),
    "mpnas_space_create": (_S, [_c_vp, _c_i32, _P(_c_vp)]),
    "mpnas_space_free": (None, [_c_vp]),
    "mpnas_space_set_int": (_S, [_c_vp, _c_i32, _c_i64]),
    "mpnas_space_get_int": (_S, [_c_vp, _c_i32, _P(_c_i64)]),
    "mpnas_space_clear_stages": (_S, [_c_vp]),
    "mpnas_space_add_stage": (_S, [_c_vp, _c_i32, _c_i32, _c_i32, _c_i32, _c_i32]),
    "mpnas_space_set_choices": (_S, [_c_vp, _c_i32, _c_vp, _c_size, _c_vp, _c_size]),
    "mpnas_space_num_ops": (_S, [_c_vp, _c_i32, _P(_c_i32)]),
    "mpnas_space_op_info": (_S, [_c_vp, _c_i32, _c_i32, _P(_c_i32), _P(_c_i32), _P(_c_i32)]),
    "mpnas_space_path_string": (_S, [_c_vp, _c_vp, _c_size, _c_vp, _c_size, _P(_c_size)]),
    "mpnas_space_parse_path": (_S, [_c_vp, _c_cp, _c_vp, _c_size]),
    "mpnas_space_path_cost": (_S, [_c_vp, _c_vp, _c_size, _c_i32, _P(_c_i64), _P(_c_i64)]),
    "mpnas_space_jaccard": (_S, [_c_vp, _c_vp, _c_size, _c_size, _c_vp, _c_size]),
    "mpnas_space_node_users": (_S, [_c_vp, _c_vp, _c_size, _c_size, _c_i32, _c_i32, _P(_c_i32)]),
    "mpnas_controller_create": (_S, [_c_vp, _c_vp, _c_size, _P(_c_vp)]),
    "mpnas_controller_free": (None, [_c_vp]),
    "mpnas_controller_num_layers": (_S, [_c_vp, _P(_c_i32)]),
    "mpnas_controller_probabilities": (_S, [_c_vp, _c_i32, _c_vp, _c_size]),
    "mpnas_controller_argmax": (_S, [_c_vp, _c_vp, _c_size]),
    "mpnas_controller_max_probabilities": (_S, [_c_vp, _c_vp, _c_size]),
    "mpnas_controller_sample": (_S, [_c_vp, _c_vp, _c_size]),
    "mpnas_controller_log_probability": (_S, [_c_vp, _c_vp, _c_size, _P(_c_double)]),
    "mpnas_controller_update": (_S, [_c_vp, _c_vp, _c_size, _c_double, _c_double, _c_double]),
    "mpnas_supernet_create": (_S, [_c_vp, _c_vp, _P(_c_vp)]),
    "mpnas_supernet_free": (None, [_c_vp]),
    "mpnas_supernet_space": (_S, [_c_vp, _P(_c_vp)]),
    "mpnas_supernet_add_domain": (_S, [_c_vp, _c_cp, _c_i32, _P(_c_i32)]),
    "mpnas_supernet_num_domains": (_S, [_c_vp, _P(_c_i32)]),
    "mpnas_supernet_set_data": (_S, [_c_vp, _c_i32, _c_i32, _c_i32, _c_vp, _c_vp, _c_i64]),
    "mpnas_supernet_set_int": (_S, [_c_vp, _c_i32, _c_i64]),
    "mpnas_supernet_get_int": (_S, [_c_vp, _c_i32, _P(_c_i64)]),
    "mpnas_supernet_set_double": (_S, [_c_vp, _c_i32, _c_double]),
    "mpnas_supernet_get_double": (_S, [_c_vp, _c_i32, _P(_c_double)]),
    "mpnas_supernet_set_fixed_path": (_S, [_c_vp, _c_vp, _c_size]),
    "mpnas_supernet_search": (_S, [_c_vp, _c_i64, _SEARCH_PROGRESS_FN, _c_vp, _c_i64]),
    "mpnas_supernet_domain_stat": (_S, [_c_vp, _c_i32, _c_i32, _P(_c_double)]),
    "mpnas_supernet_controller": (_S, [_c_vp, _c_i32, _P(_c_vp)]),
    "mpnas_supernet_path": (_S, [_c_vp, _c_i32, _c_vp, _c_size]),
    "mpnas_supernet_latency_table": (_S, [_c_vp, _c_vp, _c_size, _P(_c_size)]),
    "mpnas_supernet_set_latency_table": (_S, [_c_vp, _c_vp, _c_size]),
    "mpnas_supernet_save_checkpoint": (_S, [_c_vp, _c_cp]),
    "mpnas_supernet_load_checkpoint": (_S, [_c_vp, _c_cp]),
    "mpnas_supernet_load_checkpoint_buffer": (_S, [_c_vp, _c_vp, _c_size]),
    "mpnas_model_create": (_S, [_c_vp, _c_vp, _P(_c_vp)]),
    "mpnas_model_create_from_supernet": (_S, [_c_vp, _P(_c_vp)]),
    "mpnas_model_free": (None, [_c_vp]),
    "mpnas_model_add_domain": (_S, [_c_vp, _c_cp, _c_i32, _c_vp, _c_size, _P(_c_i32)]),
    "mpnas_model_num_domains": (_S, [_c_vp, _P(_c_i32)]),
    "mpnas_model_domain_name": (_S, [_c_vp, _c_i32, _c_vp, _c_size, _P(_c_size)]),
    "mpnas_model_domain_classes": (_S, [_c_vp, _c_i32, _P(_c_i32)]),
    "mpnas_model_path": (_S, [_c_vp, _c_i32, _c_vp, _c_size]),
    "mpnas_model_space": (_S, [_c_vp, _P(_c_vp)]),
    "mpnas_model_set_data": (_S, [_c_vp, _c_i32, _c_i32, _c_i32, _c_vp, _c_vp, _c_i64]),
    "mpnas_model_clear_data": (_S, [_c_vp]),
    "mpnas_model_set_int": (_S, [_c_vp, _c_i32, _c_i64]),
    "mpnas_model_get_int": (_S, [_c_vp, _c_i32, _P(_c_i64)]),
    "mpnas_model_set_double": (_S, [_c_vp, _c_i32, _c_double]),
    "mpnas_model_get_double": (_S, [_c_vp, _c_i32, _P(_c_double)]),
    "mpnas_model_set_domain_int": (_S, [_c_vp, _c_i32, _c_i32, _c_i64]),
    "mpnas_model_train": (_S, [_c_vp, _c_i64, _TRAIN_PROGRESS_FN, _c_vp, _c_i64]),
    "mpnas_model_domain_stat": (_S, [_c_vp, _c_i32, _c_i32, _P(_c_double)]),
    "mpnas_model_evaluate": (_S, [_c_vp, _c_i32, _c_i32, _c_vp, _c_vp, _c_i64,
                                  _P(_c_double), _P(_c_double)]),
    "mpnas_model_node_users": (_S, [_c_vp, _c_i32, _c_i32, _P(_c_i32)]),
    "mpnas_model_jaccard": (_S, [_c_vp, _c_vp, _c_size]),
    "mpnas_model_save": (_S, [_c_vp, _c_cp]),
    "mpnas_model_save_buffer": (_S, [_c_vp, _c_vp, _c_size, _P(_c_size)]),
    "mpnas_model_export_onnx": (_S, [_c_vp, _c_i32, _c_cp]),
    "mpnas_model_export_onnx_buffer": (_S, [_c_vp, _c_i32, _c_vp, _c_size, _P(_c_size)]),
    "mpnas_model_load": (_S, [_c_vp, _c_cp, _P(_c_vp)]),
    "mpnas_model_load_buffer": (_S, [_c_vp, _c_vp, _c_size, _P(_c_vp)]),
    "mpnas_model_save_checkpoint": (_S, [_c_vp, _c_cp]),
    "mpnas_model_load_checkpoint": (_S, [_c_vp, _c_cp]),
    "mpnas_model_load_checkpoint_buffer": (_S, [_c_vp, _c_vp, _c_size]),
    "mpnas_predictor_create": (_S, [_c_vp, _P(_c_vp)]),
    "mpnas_predictor_free": (None, [_c_vp]),
    "mpnas_predictor_run": (_S, [_c_vp, _c_i32, _c_i32, _c_vp, _c_i64, _c_i32, _c_vp, _c_size]),
    "mpnas_model_quantize": (_S, [_c_vp, _c_i32]),
    "mpnas_model_drop_float": (_S, [_c_vp]),
    "mpnas_predictor_set_precision": (_S, [_c_vp, _c_i32]),
    "mpnas_predictor_get_precision": (_S, [_c_vp, _P(_c_i32)]),
    "mpnas_param_list": (_S, [_c_i32, _c_vp, _c_size, _P(_c_size)]),
    "mpnas_param_bounds": (_S, [_c_i32, _c_i32, _P(_c_i32), _P(_c_double), _P(_c_double),
                                _P(_c_double), _P(_c_i32)]),
    "mpnas_param_names": (_S, [_c_i32, _c_i32, _P(_c_cp), _P(_c_cp), _P(_c_cp)]),
}


class _Library(object):
    """The loaded shared library: one attribute per declared function. A function this
    build does not export raises UnsupportedError when called."""

    def __init__(self, cdll, path):
        self.cdll = cdll
        self.path = path
        self.missing = []
        for name, (restype, argtypes) in _PROTOTYPES.items():
            try:
                fn = getattr(cdll, name)
            except AttributeError:
                self.missing.append(name)
                setattr(self, name, _missing_function(name, path))
                continue
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name, fn)


def _missing_function(name, path):
    def missing(*args):
        raise UnsupportedError(-5, "%s is not exported by %s (a library older than this "
                                   "wrapper?)" % (name, path), name)
    return missing


_lib = None


def _default_candidates():
    env = os.environ.get("MPNAS_LIBRARY")
    if env:
        return [env]  # set explicitly: no silent fallback to another copy
    here = os.path.dirname(os.path.abspath(__file__))
    out = sorted(glob.glob(os.path.join(here, "libmpnas.so*")))[:1]  # bundled
    out.append(os.path.join(here, os.pardir, os.pardir, "lib", "libmpnas.so"))  # source tree
    libdir = _pkg_config_libdir()
    if libdir:
        out.append(os.path.join(libdir, "libmpnas.so"))
    found = ctypes.util.find_library("mpnas")
    if found:
        out.append(found)
    return out


def _pkg_config_libdir():
    """The libdir of an installed mpnas.pc (pkg-config applies PKG_CONFIG_SYSROOT_DIR), or
    None without pkg-config or the file."""
    try:
        run = subprocess.run(["pkg-config", "--variable=libdir", "mpnas"], timeout=30,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    libdir = run.stdout.decode("utf-8", "replace").strip()
    return libdir if run.returncode == 0 and libdir else None


def load_library(path=None):
    """Load libmpnas (from `path`, or as the module docstring says) and return the
    path it was loaded from. Called implicitly by the first use; calling it again
    with a path replaces the library for handles created afterwards."""
    global _lib
    if _lib is not None and path is None:
        return _lib.path
    candidates = [os.fspath(path)] if path is not None else _default_candidates()
    errors = []
    for cand in candidates:
        if os.sep in cand and not os.path.exists(cand):
            errors.append("%s: no such file" % cand)
            continue
        try:
            cdll = ctypes.CDLL(cand)
        except OSError as e:
            errors.append("%s: %s" % (cand, e))
            continue
        _lib = _Library(cdll, os.path.abspath(cand) if os.sep in cand else cand)
        return _lib.path
    raise OSError("libmpnas not found (set MPNAS_LIBRARY to the path of libmpnas.so): "
                  + "; ".join(errors or ["no candidate"]))


def _L():
    if _lib is None:
        load_library()
    return _lib


def library_path():
    """The path of the loaded library (loading it if needed)."""
    return load_library()


def version():
    """The run-time library's version string, e.g. "0.1.0"."""
    return _L().mpnas_version_string().decode()


def version_number():
    """The run-time library's version as MAJOR*10000 + MINOR*100 + PATCH."""
    return int(_L().mpnas_version_number())


def status_string(status):
    """The library's short English description of a status code."""
    return _L().mpnas_status_string(int(status)).decode("utf-8", "replace")


def isa_supported(isa):
    """True if this CPU and build can run the ISA ("scalar", "avx2", "neon" or code)."""
    return bool(_L().mpnas_isa_supported(_enum_value("isa", isa)))


# ---- Helpers: names, enums, buffers -------------------------------------------------------

def _enum_value(kind, value):
    if isinstance(value, str):
        table = _ENUMS[kind]
        key = value.lower().replace("-", "_")
        prefix = "mpnas_" + _ENUM_PREFIX[kind].lower()
        if key.startswith(prefix):
            key = key[len(prefix):]
        if key not in table:
            raise UnknownParameterError(
                -2, "unknown %s %r (one of: %s)" % (kind, value, ", ".join(sorted(table))))
        return table[key]
    return _integer(value, "%s (a name or an integer code)" % kind)


def _enum_name(kind, value):
    for name, v in _ENUMS[kind].items():
        if v == value:
            return name
    return value


# ---- Parameters: described by the library (mpnas_param_list / _bounds / _names) ----------

ParamInfo = namedtuple("ParamInfo", "name constant code type lo hi default read_only lo_open "
                                    "hi_open odd values")
ParamInfo.__doc__ = """A parameter as the library describes it (mpnas_param_bounds): name
(the short name, "steps"), constant ("MPNAS_SEARCH_STEPS"), code, type ("int" or
"real"), lo and hi (ints for an integer parameter), default, read_only, lo_open /
hi_open (that end itself is refused), odd (odd values only) and values (an enumeration's
value names in code order, e.g. ("sgd", "rmsprop", "adam"), else None). lo, hi and
default are None for a read-only parameter, default also where it depends on other
settings (cost_beta)."""

_READ_ONLY, _LO_OPEN, _HI_OPEN, _ENUM, _ODD = 1, 2, 4, 8, 16  # MPNAS_PARAM_* flags
_ENUM_OF_PREFIX = {"MPNAS_" + prefix: kind for kind, prefix in _ENUM_PREFIX.items()}
_described = {"lib": None}  # the loaded library's descriptions, read once per library


class _Param(namedtuple("_Param", "info enum")):
    """A described parameter and the wrapper's name of its enumeration (or None)."""


def _describe(lib, kind):
    """{short name: _Param} of a handle kind, from the library."""
    def call(fn, *args):
        status = getattr(lib, fn)(*args)
        if status != OK:
            raise _error(status, "describing the parameters of handle kind %d" % kind, fn)

    n = _c_size()
    call("mpnas_param_list", kind, None, 0, ctypes.byref(n))
    codes = (_c_i32 * n.value)()
    call("mpnas_param_list", kind, codes, n.value, ctypes.byref(n))
    out = {}
    for code in codes:
        typ, flags = _c_i32(), _c_i32()
        lo, hi, default = _c_double(), _c_double(), _c_double()
        name, short, prefix = _c_cp(), _c_cp(), _c_cp()
        call("mpnas_param_bounds", kind, code, ctypes.byref(typ), ctypes.byref(lo),
             ctypes.byref(hi), ctypes.byref(default), ctypes.byref(flags))
        call("mpnas_param_names", kind, code, ctypes.byref(name), ctypes.byref(short),
             ctypes.byref(prefix))
        f = flags.value
        enum = _ENUM_OF_PREFIX.get(prefix.value.decode()) if f & _ENUM else None
        real = typ.value == 1
        bounds = [None if v != v else v for v in (lo.value, hi.value, default.value)]  # NaN
        if not real:  # whole numbers, clamped to int64 (the seed's ends are +-2^63)
            bounds = [None if v is None else max(-1 << 63, min((1 << 63) - 1, int(v)))
                      for v in bounds]
        values = None
        if enum is not None:
            values = tuple(k for k, _ in sorted(_ENUMS[enum].items(), key=lambda kv: kv[1]))
        info = ParamInfo(short.value.decode(), name.value.decode(), int(code),
                         "real" if real else "int", bounds[0], bounds[1], bounds[2],
                         bool(f & _READ_ONLY), bool(f & _LO_OPEN), bool(f & _HI_OPEN),
                         bool(f & _ODD), values)
        out[info.name] = _Param(info, enum)
    return out


def _params(what):
    """{short name: _Param} of a `what` handle (a key of _HANDLE_KINDS), as the loaded
    library describes them. Also, in _described: "constants", {what: {"MPNAS_...": short
    name}}, and "codes", {"SEARCH_STEPS": 2, ...} (the module constants)."""
    lib = _L()
    if _described["lib"] is not lib:
        tables = {w: _describe(lib, kind) for w, (kind, _) in _HANDLE_KINDS.items()}
        constants = {w: {p.info.constant: n for n, p in t.items()} for w, t in tables.items()}
        codes = {p.info.constant[len("MPNAS_"):]: p.info.code
                 for t in tables.values() for p in t.values()}
        _described.update(lib=lib, tables=tables, constants=constants, codes=codes)
    return _described["tables"][what]


def param_info(handle, param=None):
    """The description of a parameter (a ParamInfo) of a handle kind ("context", "space",
    "supernet", "model", "domain", or a handle or its class), by name, constant or code;
    without `param`, a dict of all of them by name."""
    if not isinstance(handle, str):
        handle = getattr(handle, "_what", None) or getattr(handle, "_kind", "").lower()
    what = {"supernet": "search"}.get(handle, handle)
    if what not in _HANDLE_KINDS:
        raise InvalidArgumentError(-1, "param_info: no handle kind %r (one of: context, space, "
                                       "supernet, model, domain)" % (handle,))
    if param is None:
        return {name: p.info for name, p in _params(what).items()}
    spec = _param_spec(what, param)
    for p in _params(what).values():
        if p.info.code == spec[0]:
            return p.info
    raise UnknownParameterError(-2, "%s has no parameter %r" % (_HANDLE_KINDS[what][1], param))


def __getattr__(name):
    """The parameter constants, from the library at first use: mpnas.SEARCH_STEPS, ...
    (the header's constant without "MPNAS_")."""
    if name.split("_")[0] in ("CONTEXT", "SPACE", "SEARCH", "TRAIN", "MODEL", "ABDP", "DOMAIN"):
        try:
            _params("context")
        except OSError as e:
            raise AttributeError("module 'mpnas' has no attribute %r: the parameter constants "
                                 "come from the library (%s)" % (name, e))
        if name in _described["codes"]:
            return _described["codes"][name]
    raise AttributeError("module 'mpnas' has no attribute %r" % (name,))


def _param_spec(what, param):
    """(code, kind, enum, read_only) of a parameter of a `what` handle (a key of
    _HANDLE_KINDS), given by its short name ("steps"), by the header's constant of THAT
    handle ("MPNAS_SEARCH_STEPS" on a supernet) or by its code; kind is "i" (integer) or
    "d" (real). Names of another handle's parameters ("train_steps" or
    "MPNAS_SEARCH_STEPS" on a model) raise UnknownParameterError."""
    table = _params(what)
    handle = _HANDLE_KINDS[what][1]
    if isinstance(param, str):
        constants = _described["constants"][what]
        name = param if param in table else constants.get(param)
        if name is None:
            known = {k.lower(): k for k in list(table) + list(constants)}
            close = [known[k] for k in difflib.get_close_matches(param.lower(), known, 3, 0.6)]
            prefixes = sorted({c[:len(c) - len(n)] + ("ABDP_" if n.startswith("abdp_") else "")
                               for c, n in constants.items()})
            raise UnknownParameterError(
                -2, "%s has no parameter %r%s; its parameters: %s (or their constants %s)"
                    % (handle, param, " (did you mean %s?)" % " or ".join(close) if close else "",
                       ", ".join(sorted(table)), ", ".join(p + "*" for p in prefixes)))
        return _spec_of(table[name])
    code = _integer(param, "a parameter code")
    for p in table.values():
        if p.info.code == code:
            return _spec_of(p)
    return (code, None, None, False)  # unknown code: let the library judge it


def _spec_of(p):
    return (p.info.code, "d" if p.info.type == "real" else "i", p.enum, p.info.read_only)


def _integer(value, what):
    """An integer argument: an int (bool and numpy integers included). A float, even
    3.0, or a str raises TypeError: nothing is truncated or parsed silently."""
    if isinstance(value, numbers.Integral):
        return int(value)
    raise TypeError("%s must be an integer, got %s %r" % (what, type(value).__name__, value))


def _real(value, what):
    """A real argument: an int or a float (numpy scalars included); a str raises TypeError."""
    if isinstance(value, numbers.Real):
        return float(value)
    raise TypeError("%s must be a number (int or float), got %s %r"
                    % (what, type(value).__name__, value))


def _int32(value, what="value"):
    """An int argument of a C int32_t: refused (OutOfRangeError), never wrapped, outside
    -2**31 .. 2**31 - 1; a float or str raises TypeError (_integer)."""
    value = _integer(value, what)
    if not -(1 << 31) <= value < 1 << 31:
        raise OutOfRangeError(-3, "%s = %d is outside the 32-bit range of the C call"
                              % (what, value))
    return value


def _int64(value, what="value"):
    """An int argument of a C int64_t, refused outside -2**63 .. 2**64 - 1; values from
    2**63 up (a 64-bit seed given as an unsigned number) are passed as their two's
    complement, which is what the library reads back as unsigned."""
    value = _integer(value, what)
    if not -(1 << 63) <= value < 1 << 64:
        raise OutOfRangeError(-3, "%s = %d is outside the 64-bit range of the C call"
                              % (what, value))
    if value >= 1 << 63:
        value -= 1 << 64
    return value


def _numpy(numpy, what):
    """The numpy module a result is built with, or None for plain Python results:
    numpy=None (the default) uses numpy when it is installed, numpy=True requires it
    (UnsupportedError without it), numpy=False never uses it."""
    if numpy is False:
        return None
    try:
        import numpy as module
    except ImportError:
        if numpy:
            raise UnsupportedError(-5, "%s(numpy=True): numpy is not installed" % what)
        return None
    return module


def _doubles(values, rows, cols, numpy, what):
    """C doubles as a float64 numpy array of shape (rows, cols) ((cols,) for rows None)
    where numpy is used (_numpy), else a list of lists (a flat list for rows None)."""
    np = _numpy(numpy, what)
    if np is not None:
        arr = np.array(values, dtype="float64")
        return arr if rows is None else arr.reshape(rows, cols)
    if rows is None:
        return list(values)
    return [list(values[i * cols:(i + 1) * cols]) for i in range(rows)]


def _c_string(data, what):
    """`data` (bytes) for a C string argument: refused if it holds a NUL, where C would
    silently stop reading it."""
    if b"\0" in data:
        raise InvalidArgumentError(-1, "%s must not contain a NUL character: %r" % (what, data))
    return data


def _path_arg(path):
    """A file path (str, bytes or os.PathLike) as bytes for C."""
    return _c_string(os.fsencode(os.fspath(path)), "a path")


def _name_arg(name):
    if not isinstance(name, str):
        raise InvalidArgumentError(-1, "a domain name must be a str, got %r" % (name,))
    return _c_string(name.encode("utf-8"), "a domain name")


_INTEGER_FORMATS = frozenset("bBhHiIlLqQnN")  # struct codes of integer buffer elements


def _int32_array(values, what="values"):
    """An array('i') of `values` (any iterable or buffer of integers) and its address.
    Non-integers (a float array, a float or str in a list) raise TypeError."""
    if isinstance(values, array.array) and values.typecode == "i" and values.itemsize == 4:
        arr = values
    else:
        try:
            mv = memoryview(values)
        except TypeError:
            mv = None
        swapped = _swapped_values(mv) if mv is not None else None
        if swapped is not None and mv.format[1] in _INTEGER_FORMATS:  # the other byte order
            seq = swapped
        elif mv is not None:
            fmt = _native_format(mv.format)
            if fmt not in _INTEGER_FORMATS:
                raise TypeError("%s must be integers, got a buffer of %r elements (%s)"
                                % (what, mv.format, type(values).__name__))
            if fmt in ("i", "l") and mv.itemsize == 4:
                arr = array.array("i")
                arr.frombytes(mv.tobytes())  # C order whatever the strides
                return arr, (arr.buffer_info()[0] if len(arr) else None)
            seq = _flatten(mv.tolist()) if mv.ndim else [mv.tolist()]
        else:
            try:
                seq = _flatten(values)
            except TypeError:
                raise TypeError("%s must be a sequence or buffer of integers, got %s"
                                % (what, type(values).__name__))
            for v in seq:
                if not isinstance(v, numbers.Integral):
                    raise TypeError("%s must be integers, got %s %r"
                                    % (what, type(v).__name__, v))
        try:
            arr = array.array("i", [int(v) for v in seq])
        except OverflowError as e:
            raise InvalidArgumentError(-1, "%s must be 32-bit integers: %s" % (what, e))
    return arr, (arr.buffer_info()[0] if len(arr) else None)


def _flatten(values):
    out = []
    stack = [iter(values)]
    while stack:
        for v in stack[-1]:
            if isinstance(v, (list, tuple)):
                stack.append(iter(v))
                break
            out.append(v)
        else:
            stack.pop()
    return out


def _native_format(fmt):
    if fmt and fmt[0] in "@=" + ("<" if sys.byteorder == "little" else ">"):
        fmt = fmt[1:]
    return fmt


def _swapped_values(mv):
    """The values of a buffer in the other byte order ('>f' on a little-endian machine,
    e.g. a numpy array of dtype '>f4') as a flat list, or None if it is not one of
    those (memoryview.tolist cannot read them)."""
    fmt = mv.format
    if len(fmt) != 2 or fmt[0] not in "<>!" or fmt[1] not in "bBhHiIqQfd":
        return None
    arr = array.array(fmt[1])
    if arr.itemsize != mv.itemsize:
        return None
    arr.frombytes(mv.tobytes())
    arr.byteswap()
    return arr.tolist()


def _stack_list_of_arrays(images, what):
    """A list (or tuple) of arrays - e.g. [numpy image, numpy image] - as one array
    (numpy.stack) or, without numpy, as nested lists; anything else as it is."""
    if not isinstance(images, (list, tuple)) or not images:
        return images
    first = images[0]
    if isinstance(first, (list, tuple, numbers.Number, str, bytes)):
        return images
    try:
        memoryview(first)
    except TypeError:
        return images
    try:
        import numpy
    except ImportError:
        numpy = None
    try:
        if numpy is not None:
            return numpy.stack([numpy.asarray(v) for v in images])
        return [memoryview(v).tolist() for v in images]
    except (TypeError, ValueError) as e:
        raise InvalidArgumentError(-1, "%s: a list of arrays that cannot be stacked into one "
                                       "array of images: %s" % (what, e))


def _shape_of(images):
    """The shape of images that have one (a numpy array, a memoryview, anything with
    .shape, a nested list), or None for a flat buffer or list (1-D included)."""
    shape = getattr(images, "shape", None)
    if shape is None and isinstance(images, (list, tuple)):
        shape, v = [], images
        while isinstance(v, (list, tuple)):
            shape.append(len(v))
            v = v[0] if v else None
    if shape is None:
        return None
    shape = tuple(int(d) for d in shape)
    return shape if len(shape) > 1 else None


def _images_in(shape, input_shape, what):
    """(images, channels) of an input of `shape` for a space's input (H, W, C):
    (N, H, W, C), (H, W, C) for one image, or one channel (N, H, W) / (N, H, W, 1)."""
    h, w, c = input_shape
    if shape == (h, w, c):
        return 1, c
    if len(shape) == 4 and shape[1:] == (h, w, c):
        return shape[0], c
    if shape[1:] in ((h, w), (h, w, 1)):
        return shape[0], 1
    raise InvalidArgumentError(
        -1, "%s: shape %s does not match the space's input (H, W, C) = (%d, %d, %d): expected "
            "(N, %d, %d, %d), (%d, %d, %d) for one image, or one channel (N, %d, %d) / "
            "(N, %d, %d, 1)" % (what, shape, h, w, c, h, w, c, h, w, c, h, w, h, w))


class _Buffer(object):
    """Images (and their labels) as a C call takes them, checked against the space's
    input shape (H, W, C): .address (int or bytes), .dtype (0 u8 / 1 f32, + 2 for one-channel
    images the library replicates into C channels), .count
    (images), .labels and .label_address (an array('i') and its address, None without
    labels), .keep (objects to keep alive during the call).

    Images with a shape (numpy arrays, memoryviews with ndim > 1, anything with .shape,
    nested lists) must be (N, H, W, C), or (H, W, C) for one image; one-channel images,
    (N, H, W) or (N, H, W, 1), go in as they are (MPNAS_DTYPE_U8_GREY / _F32_GREY) and the
    library replicates them into C channels. A flat buffer (bytes,
    bytearray, array.array, a 1-D array or list) must hold a whole number of images.
    count=, when given, must equal the number of images, and so must the number of
    labels. Nothing is dropped or reinterpreted silently: anything else raises."""

    def __init__(self, images, input_shape, dtype=None, count=None, labels=None,
                 what="images"):
        want = None if dtype is None else _enum_value("dtype", dtype)
        grey = None  # a one-channel dtype ("u8_grey", "f32_grey") asked for
        if want is not None:
            grey = bool(want & 2)
            want &= 1  # the element type; a shape says itself whether the images are grey
        images = _stack_list_of_arrays(images, what)
        try:
            mv = memoryview(images)
        except TypeError:
            mv = None
        if mv is not None:
            fmt = _native_format(mv.format)
            if fmt in ("B", "c") and want in (None, 0):
                self.dtype, data = 0, mv
            elif fmt == "f" and mv.itemsize == 4 and want in (None, 1):
                self.dtype, data = 1, mv
            else:  # another element type (or byte order): convert (a copy)
                swapped = _swapped_values(mv)
                if swapped is not None:
                    values, fmt = swapped, mv.format[1]
                else:
                    try:
                        values = mv.tolist() if mv.ndim else [mv.tolist()]
                    except NotImplementedError:
                        raise InvalidArgumentError(
                            -1, "%s: unsupported element format %r" % (what, mv.format))
                data = self._convert(_flatten(values), fmt, want, what)
        elif isinstance(images, (list, tuple)):
            data = self._convert(_flatten(images), None, want, what)
        else:
            raise InvalidArgumentError(
                -1, "%s must support the buffer protocol (bytes, bytearray, array, numpy "
                    "array, memoryview) or be a list, got %s" % (what, type(images).__name__))
        if isinstance(data, array.array):
            self.dtype = 1 if data.typecode == "f" else 0
            data = memoryview(data)
        itemsize = 4 if self.dtype == 1 else 1
        values = data.nbytes // itemsize
        h, w, c = input_shape
        pixels = h * w * c
        if pixels <= 0:
            raise InvalidArgumentError(-1, "%s: the space has no pixels" % what)
        shape = _shape_of(images)
        if shape is None:  # a flat buffer: its size (and a grey dtype) say how many images
            channels = 1 if grey else c
            if values % (h * w * channels):
                raise InvalidArgumentError(
                    -1, "%s: %d values is not a whole number of %simages of %d values "
                        "(H x W x C = %d x %d x %d)" % (what, values, "one-channel " if grey else "",
                                                        h * w * channels, h, w, channels))
            n = values // (h * w * channels)
        else:
            n, channels = _images_in(shape, input_shape, what)
            if grey and channels != 1:
                raise InvalidArgumentError(
                    -1, "%s: dtype %r is for one-channel images, but the shape %s has %d "
                        "channels" % (what, dtype, shape, channels))
            if values != n * h * w * channels:
                raise InvalidArgumentError(
                    -1, "%s: shape %s, but %d values" % (what, shape, values))
        if count is not None and _integer(count, "count") != n:
            raise InvalidArgumentError(
                -1, "%s: count=%r, but the %s hold %d images" % (what, count, what, n))
        self.labels = self.label_address = None
        if labels is not None:
            self.labels, self.label_address = _int32_array(labels, "labels")
            if len(self.labels) != n:
                raise InvalidArgumentError(
                    -1, "labels: %d labels for %d images (one label per image)"
                        % (len(self.labels), n))
        self.count = n
        self.keep = [images, data]
        if channels != c:  # one channel: the library replicates it (MPNAS_DTYPE_*_GREY)
            self.dtype += 2
        if not data.c_contiguous:
            data = memoryview(data.tobytes())
            self.keep.append(data)
        nbytes = data.nbytes
        if nbytes == 0:
            self.address = None
        elif isinstance(data.obj, bytes) and data.obj is not None and data.nbytes == len(data.obj):
            self.address = data.obj  # ctypes passes a bytes object's own storage
        elif data.readonly:
            c = (ctypes.c_char * nbytes).from_buffer_copy(data)
            self.keep.append(c)
            self.address = ctypes.addressof(c)
        else:
            c = (ctypes.c_char * nbytes).from_buffer(data)
            self.keep.append(c)
            self.address = ctypes.addressof(c)

    @staticmethod
    def _convert(values, fmt, want, what):
        if want is None:  # any non-integer value (float, numpy.float32, ...) makes it float32
            want = 1 if (fmt in ("d", "e", "f") or
                         any(not isinstance(v, numbers.Integral) for v in values)) else 0
        try:
            if want == 0:
                return array.array("B", [int(v) for v in values])
            return array.array("f", [float(v) for v in values])
        except (OverflowError, ValueError, TypeError) as e:
            raise InvalidArgumentError(
                -1, "%s: cannot convert to %s: %s" % (what, "uint8" if want == 0 else "float32", e))


# ---- Handles ------------------------------------------------------------------------------

class _Handle(object):
    """Common machinery: the C handle, its context, children closed before it.

    A child holds its parent strongly (so the parent outlives it) and the parent counts
    its live children. The C parent is freed only once that count is 0: close() on a
    parent closes the children it can reach first, and when the garbage collector
    finalises a parent before its children (a reference cycle, e.g. through a
    traceback, is finalised in no particular order) the parent's free is deferred
    until its last child has been freed."""

    _free_fn = None  # name of the C function freeing an owned handle
    _kind = "handle"
    _busy = 0  # > 0 while a call of this handle runs Python callbacks (train, search)
    _in_log = 0  # (Context) > 0 while its log callback runs

    # A copy would share the C object and free it twice; a pickle cannot carry it.
    def __copy__(self):
        raise TypeError("a %s cannot be copied (it owns a C object); save_buffer() / "
                        "load_buffer() copy a model or supernet" % self._kind)

    def __deepcopy__(self, memo):
        self.__copy__()

    def __reduce_ex__(self, protocol):
        raise TypeError("a %s cannot be pickled (it owns a C object); save_buffer() gives "
                        "the bytes of a model or supernet" % self._kind)

    def _init_handle(self, handle, context, owned=True, parent=None):
        self._h = handle
        self._owned = owned
        self._parent = parent  # strong reference: keeps the parent alive
        self._children = weakref.WeakSet()  # weak: no reference cycles
        self._live_children = 0
        self._pending = None  # a closed handle whose free waits for the children
        if context is not self:
            self._context = context
        if parent is not None:
            parent._children.add(self)
            parent._live_children += 1

    @property
    def closed(self):
        """True once close() has run (or the parent was closed)."""
        return getattr(self, "_h", None) is None

    def _handle(self):
        h = getattr(self, "_h", None)
        if h is None:
            raise InvalidArgumentError(-1, "this %s is closed" % self._kind)
        return h

    def _busy_below(self):
        """This handle or one of its descendants, if one is running a call with Python
        callbacks (or its context is inside its log callback); else None."""
        if self._busy > 0 or getattr(self._context, "_in_log", 0) > 0:
            return self
        for child in list(self._children):
            busy = child._busy_below()
            if busy is not None:
                return busy
        return None

    def close(self):
        """Free the C object (children first). Idempotent. From inside a callback of a
        running call (a progress or log callback) it raises StateError for the handle
        that runs the call and for its ancestors: stop the run first (a true result from
        the progress callback), then close."""
        h = getattr(self, "_h", None)
        if h is None:
            return
        busy = self._busy_below()
        if busy is not None:
            raise StateError(-10, "cannot close this %s while %s runs a call that is in one "
                                 "of its callbacks; stop the call (return True from the "
                                 "progress callback), then close"
                             % (self._kind, "it" if busy is self else "its " + busy._kind))
        for child in list(self._children):
            child.close()
        self._h = None
        if self._live_children > 0:
            self._pending = h  # freed by the last child's _free
        else:
            self._free(h)

    def _free(self, h):
        if self._owned and self._free_fn is not None and _lib is not None:
            getattr(_lib, self._free_fn)(h)
        parent = self._parent
        if parent is not None:
            parent._live_children -= 1
            if parent._live_children == 0 and parent._pending is not None:
                ph, parent._pending = parent._pending, None
                parent._free(ph)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def _check(self, status, function):
        """Raise the error of a failed call made with this handle's context."""
        if status != OK:
            ctx = self._context
            raise ctx._error(status, function)

    def _call(self, name, *args):
        fn = getattr(_L(), name)
        status = fn(*args)
        if status != OK:
            raise self._context._error(status, name)


class Context(_Handle):
    """Settings every other handle uses (threads, seed, instruction set, logging) and
    the last error. Context(threads=2, seed=1, isa="auto", log_level="warning",
    log=callable(level, message))."""

    _free_fn = "mpnas_context_free"
    _kind = "Context"

    def __init__(self, threads=None, seed=None, isa=None, log_level=None, log=None):
        lib = _L()
        h = _c_vp()
        status = lib.mpnas_context_create(ctypes.byref(h))
        if status != OK:
            raise _error(status, "", "mpnas_context_create")
        self._log_cb = None
        self._collective_cb = None
        self._init_handle(h.value, self)
        for name, value in (("threads", threads), ("seed", seed), ("isa", isa),
                            ("log_level", log_level)):
            if value is not None:
                self.set(name, value)
        if log is not None:
            self.set_log_callback(log)

    @property
    def _context(self):
        return self

    def _error(self, status, function=None):
        message = ""
        h = getattr(self, "_h", None)
        if h is not None and _lib is not None:
            if _lib.mpnas_context_last_status(h) == status:
                message = (_lib.mpnas_context_last_error(h) or b"").decode("utf-8", "replace")
            _lib.mpnas_context_clear_error(h)
        return _error(status, message, function)

    def close(self):
        """Free the context, closing every handle created from it first."""
        _Handle.close(self)

    def _free(self, h):
        _Handle._free(self, h)
        self._log_cb = None  # the C context is gone: the callback may go too

    # parameters
    def set(self, param, value):
        """Set a context parameter by name ("threads", "seed", "isa", "log_level"),
        constant name or code. Enum values may be given by name ("avx2", "debug")."""
        code, _, enum, _ = _param_spec("context", param)
        if enum is not None:
            value = _enum_value(enum, value)
        self._call("mpnas_context_set_int", self._handle(), code,
                   _int64(value, "parameter %r" % (param,)))

    set_int = set

    def get(self, param):
        """Read a context parameter (an int; see the properties for names of enums)."""
        code = _param_spec("context", param)[0]
        v = _c_i64()
        self._call("mpnas_context_get_int", self._handle(), code, ctypes.byref(v))
        return v.value

    get_int = get

    def param_info(self, param=None):
        """mpnas.param_info(self, param): what a parameter of this handle accepts (a
        ParamInfo), or all of them as a dict by name."""
        return param_info(self, param)

    threads = property(lambda self: self.get("threads"),
                       lambda self, v: self.set("threads", v), doc="Worker threads (0 = all).")
    seed = property(lambda self: self.get("seed") & ((1 << 64) - 1),
                    lambda self, v: self.set("seed", v), doc="Seed of every random stream.")
    isa = property(lambda self: _enum_name("isa", self.get("isa")),
                   lambda self, v: self.set("isa", v),
                   doc='Requested instruction set: "auto", "scalar", "avx2" or "neon".')
    isa_active = property(lambda self: _enum_name("isa", self.get("isa_active")),
                          doc="The instruction set in use (read-only).")
    log_level = property(lambda self: _enum_name("log_level", self.get("log_level")),
                         lambda self, v: self.set("log_level", v),
                         doc='"none", "error", "warning", "info" or "debug".')
    openmp = property(lambda self: bool(self.get("openmp")),
                      doc="True if the library was built with OpenMP.")
    shard_batch = property(lambda self: bool(self.get("shard_batch")),
                           lambda self, v: self.set("shard_batch", int(bool(v))),
                           doc="Each training thread takes a shard of a domain's batch "
                               "(faster on 2 cores; results then depend on the thread count).")

    @property
    def last_error(self):
        """The message of the last failing call with this context ("" when none)."""
        return (_L().mpnas_context_last_error(self._handle()) or b"").decode("utf-8", "replace")

    def set_log_callback(self, fn):
        """Install fn(level: int, message: str) as the log callback (None removes it).
        Exceptions raised by fn are printed to stderr and otherwise ignored."""
        h = self._handle()
        if fn is None:
            self._call("mpnas_context_set_log_callback", h, _LOG_FN(), None)
            self._log_cb = None
            return

        def trampoline(user, level, message):
            self._in_log += 1  # closing a handle of this context now raises StateError
            try:
                fn(int(level), (message or b"").decode("utf-8", "replace"))
            except Exception as e:  # never let an exception cross the C frame
                sys.stderr.write("mpnas log callback raised %r\n" % (e,))
            finally:
                self._in_log -= 1

        cb = _LOG_FN(trampoline)
        self._call("mpnas_context_set_log_callback", h, cb, None)
        self._log_cb = cb  # kept referenced while installed

    def set_collective(self, allreduce, rank, world_size):
        """Make this process worker `rank` of `world_size` data-parallel workers
        (docs/SCALING.md). allreduce(array, dtype) must sum `array` in place over every
        worker - a ctypes array of c_float (dtype "f32"), c_double ("f64") or c_int64
        ("i64"); e.g. with mpi4py: COMM.Allreduce(MPI.IN_PLACE, array, op=MPI.SUM).
        An exception in it fails the step with MPNAS_E_IO (its text on stderr).
        set_collective(None, 0, 1) goes back to one process."""
        h = self._handle()
        rank, world_size = _integer(rank, "rank"), _integer(world_size, "world_size")
        if not (-(1 << 31) <= rank < (1 << 31) and -(1 << 31) <= world_size < (1 << 31)):
            raise ValueError("set_collective: rank %d or world_size %d is outside int32"
                             % (rank, world_size))
        if allreduce is None:
            self._call("mpnas_context_set_collective", h, _ALLREDUCE_FN(), None, rank,
                       world_size)
            self._collective_cb = None
            return
        if not callable(allreduce):
            raise TypeError("set_collective: allreduce must be callable (or None)")
        types = {0: (ctypes.c_float, "f32"), 1: (ctypes.c_double, "f64"),
                 2: (ctypes.c_int64, "i64")}  # MPNAS_COLLECTIVE_F32, _F64, _I64

        def trampoline(user, buf, count, dtype):
            try:
                ctype, name = types[int(dtype)]
                allreduce((ctype * int(count)).from_address(buf), name)
                return 0
            except BaseException as e:  # never let an exception cross the C frame
                sys.stderr.write("mpnas all-reduce callback raised %r\n" % (e,))
                return 1

        cb = _ALLREDUCE_FN(trampoline)
        self._call("mpnas_context_set_collective", h, cb, None, rank, world_size)
        self._collective_cb = cb  # kept referenced while installed

    # conveniences
    def space(self, preset="32px"):
        """Space(self, preset)."""
        return Space(self, preset)

    def load_model(self, path):
        """Model.load(self, path)."""
        return Model.load(self, path)

    def __repr__(self):
        if self.closed:
            return "<mpnas.Context closed>"
        return "<mpnas.Context threads=%d seed=%d isa=%s>" % (self.threads, self.seed,
                                                              self.isa_active)


class Space(_Handle):
    """A search space: Space(ctx, preset) with preset "32px" (default), "mobilenet_v3",
    "mbv2_9", "empty" or an MPNAS_PRESET_* code. A supernet's or model's own space
    (Supernet.space, Model.space) is a read-only view owned by that handle."""

    _free_fn = "mpnas_space_free"
    _kind = "Space"

    def __init__(self, context, preset="32px"):
        if not isinstance(context, Context):
            raise InvalidArgumentError(-1, "Space(context, preset): context must be a Context")
        h = _c_vp()
        status = _L().mpnas_space_create(context._handle(), _enum_value("preset", preset),
                                         ctypes.byref(h))
        if status != OK:
            raise context._error(status, "mpnas_space_create")
        self._init_handle(h.value, context, owned=True, parent=context)

    @classmethod
    def _borrow(cls, handle, owner):
        self = cls.__new__(cls)
        self._init_handle(handle, owner._context, owned=False, parent=owner)
        return self

    @property
    def context(self):
        return self._context

    def set(self, param, value):
        """Set a space parameter by name ("input_height", "stem_channels", "se_mode",
        ...), constant name or code; enum values by name ("hswish", "choice")."""
        code, _, enum, _ = _param_spec("space", param)
        if enum is not None:
            value = _enum_value(enum, value)
        self._call("mpnas_space_set_int", self._handle(), code,
                   _int64(value, "parameter %r" % (param,)))

    set_int = set

    def get(self, param):
        code = _param_spec("space", param)[0]
        v = _c_i64()
        self._call("mpnas_space_get_int", self._handle(), code, ctypes.byref(v))
        return v.value

    get_int = get

    def param_info(self, param=None):
        """mpnas.param_info(self, param): what a parameter of this handle accepts (a
        ParamInfo), or all of them as a dict by name."""
        return param_info(self, param)

    def configure(self, **params):
        """Set several parameters: configure(stem_channels=8, head_channels=64)."""
        for name, value in params.items():
            self.set(name, value)
        return self

    def parameters(self):
        """Every parameter as a dict."""
        return {name: self.get(name) for name in _params("space")}

    num_layers = property(lambda self: self.get("num_layers"),
                          doc="Searchable layers over all stages.")
    num_stages = property(lambda self: self.get("num_stages"))
    input_shape = property(lambda self: (self.get("input_height"), self.get("input_width"),
                                         self.get("input_channels")),
                           doc="(height, width, channels) of one input image.")

    @property
    def image_size(self):
        """Values per input image (height x width x channels)."""
        h, w, c = self.input_shape
        return h * w * c

    def clear_stages(self):
        self._call("mpnas_space_clear_stages", self._handle())

    def add_stage(self, out_channels, layers, stride=1, activation="relu", skippable=True):
        """Append a stage (activation by name or MPNAS_ACT_* code)."""
        self._call("mpnas_space_add_stage", self._handle(), _int32(out_channels, "out_channels"),
                   _int32(layers, "layers"), _int32(stride, "stride"),
                   _enum_value("activation", activation), int(bool(skippable)))

    def set_choices(self, stage, kernels, expansions):
        """Kernel sizes and expansion ratios of one stage (-1: the default lists)."""
        k, ka = _int32_array(kernels, "kernels")
        e, ea = _int32_array(expansions, "expansions")
        self._call("mpnas_space_set_choices", self._handle(), _int32(stage, "stage"), ka, len(k),
                   ea, len(e))

    def num_ops(self, layer):
        n = _c_i32()
        self._call("mpnas_space_num_ops", self._handle(), _int32(layer, "layer"), ctypes.byref(n))
        return n.value

    def op_info(self, layer, op):
        """OpInfo(kernel, expansion, se) of op `op` of `layer` (0, 0, 0 for zero)."""
        k, e, s = _c_i32(), _c_i32(), _c_i32()
        self._call("mpnas_space_op_info", self._handle(), _int32(layer, "layer"), _int32(op, "op"),
                   ctypes.byref(k), ctypes.byref(e), ctypes.byref(s))
        return OpInfo(k.value, e.value, bool(s.value))

    def op_name(self, layer, op):
        """An op as the path text writes it: "zero", "k5e3", "k3e6-se"."""
        info = self.op_info(layer, op)
        if info.kernel == 0:
            return "zero"
        return "k%de%d%s" % (info.kernel, info.expansion, "-se" if info.se else "")

    def ops(self, layer):
        """The names of a layer's ops, in op-index order."""
        return [self.op_name(layer, op) for op in range(self.num_ops(layer))]

    def _path(self, path):
        """A path given as op indices or text -> (array('i'), address, num_layers)."""
        if isinstance(path, str):
            path = self.parse_path(path)
        arr, addr = _int32_array(path, "path")
        return arr, addr, len(arr)

    def path_string(self, path):
        """A path (op indices) as text, e.g. "k3e3 k5e6 zero ..."."""
        arr, addr, n = self._path(path)
        needed = _c_size()
        buf = ctypes.create_string_buffer(256)
        st = _L().mpnas_space_path_string(self._handle(), addr, n, buf, len(buf),
                                          ctypes.byref(needed))
        if st == -1 and needed.value > len(buf):  # MPNAS_E_INVALID_ARGUMENT: buffer too small
            self._context._error(st)  # clears the stored error
            buf = ctypes.create_string_buffer(needed.value)
            st = _L().mpnas_space_path_string(self._handle(), addr, n, buf, len(buf),
                                              ctypes.byref(needed))
        self._check(st, "mpnas_space_path_string")
        return buf.value.decode()

    def parse_path(self, text):
        """Path text (str, or ASCII bytes) -> a list of op indices (one per layer)."""
        if isinstance(text, (bytes, bytearray)):
            text = bytes(text).decode("ascii", "replace")
        if not isinstance(text, str):
            raise TypeError("path text must be a str, got %s" % type(text).__name__)
        n = self.num_layers
        out = (_c_i32 * max(n, 1))()
        self._call("mpnas_space_parse_path", self._handle(),
                   _c_string(text.encode(), "path text"), out, n)
        return list(out[:n])

    def path_cost(self, path, num_classes):
        """(macs, params) of one domain's path with a classifier of num_classes."""
        arr, addr, n = self._path(path)
        macs, params = _c_i64(), _c_i64()
        self._call("mpnas_space_path_cost", self._handle(), addr, n,
                   _int32(num_classes, "num_classes"),
                   ctypes.byref(macs), ctypes.byref(params))
        return macs.value, params.value

    def _paths(self, paths):
        rows = [self._path(p)[0] for p in paths]
        n = self.num_layers
        flat = array.array("i")
        for r in rows:
            if len(r) != n:
                raise InvalidArgumentError(-1, "a path has %d entries, the space %d layers"
                                           % (len(r), n))
            flat.extend(r)
        return flat, (flat.buffer_info()[0] if len(flat) else None), len(rows), n

    def jaccard(self, paths, numpy=None):
        """The Jaccard similarity of every pair of paths' node sets (a D x D numpy
        array where numpy is used, see Predictor.run; else a list of lists)."""
        flat, addr, d, n = self._paths(paths)
        out = (_c_double * max(d * d, 1))()
        self._call("mpnas_space_jaccard", self._handle(), addr, d, n, out, d * d)
        return _doubles(out[:d * d], d, d, numpy, "jaccard")

    def node_users(self, paths, layer, op):
        """How many of the paths use node (layer, op)."""
        flat, addr, d, n = self._paths(paths)
        users = _c_i32()
        self._call("mpnas_space_node_users", self._handle(), addr, d, n, _int32(layer, "layer"),
                   _int32(op, "op"),
                   ctypes.byref(users))
        return users.value

    def __repr__(self):
        if self.closed:
            return "<mpnas.Space closed>"
        return "<mpnas.Space %dx%dx%d, %d layers>" % (self.input_shape + (self.num_layers,))


class Controller(_Handle):
    """A REINFORCE controller: standalone Controller(ctx, ops_per_layer), or a
    supernet's own (Supernet.controller(domain), not freed by close())."""

    _free_fn = "mpnas_controller_free"
    _kind = "Controller"

    def __init__(self, context, ops_per_layer):
        arr, addr = _int32_array(ops_per_layer, "ops_per_layer")
        h = _c_vp()
        status = _L().mpnas_controller_create(context._handle(), addr, len(arr), ctypes.byref(h))
        if status != OK:
            raise context._error(status, "mpnas_controller_create")
        self._init_handle(h.value, context, owned=True, parent=context)
        self._ops = list(arr)

    @classmethod
    def _borrow(cls, handle, owner, ops_per_layer):
        self = cls.__new__(cls)
        self._init_handle(handle, owner._context, owned=False, parent=owner)
        self._ops = list(ops_per_layer)
        return self

    @property
    def ops_per_layer(self):
        return list(self._ops)

    @property
    def num_layers(self):
        n = _c_i32()
        self._call("mpnas_controller_num_layers", self._handle(), ctypes.byref(n))
        return n.value

    def probabilities(self, layer, numpy=None):
        """Softmax probabilities of one layer's ops (a numpy array
        where numpy is used, see Predictor.run; else a list)."""
        layer = _int32(layer, "layer")
        n = self._ops[layer] if 0 <= layer < len(self._ops) else 1
        out = (_c_double * n)()
        self._call("mpnas_controller_probabilities", self._handle(), layer, out, n)
        return _doubles(out[:n], None, n, numpy, "probabilities")

    def _layers_call(self, name, ctype):
        n = self.num_layers
        out = (ctype * max(n, 1))()
        self._call(name, self._handle(), out, n)
        return list(out[:n])

    def argmax(self):
        return self._layers_call("mpnas_controller_argmax", _c_i32)

    def max_probabilities(self):
        return self._layers_call("mpnas_controller_max_probabilities", _c_double)

    def sample(self):
        return self._layers_call("mpnas_controller_sample", _c_i32)

    def log_probability(self, path):
        arr, addr = _int32_array(path, "path")
        v = _c_double()
        self._call("mpnas_controller_log_probability", self._handle(), addr, len(arr),
                   ctypes.byref(v))
        return v.value

    def update(self, path, reward, learning_rate, entropy_bonus=0.0):
        arr, addr = _int32_array(path, "path")
        self._call("mpnas_controller_update", self._handle(), addr, len(arr), float(reward),
                   float(learning_rate), float(entropy_bonus))


def _progress_trampoline(fn, cfunctype):
    """A C progress callback calling fn(step, total); a true result cancels. An
    exception in fn cancels too and is re-raised by the caller (state["error"]), and so
    does a Ctrl-C noted by _run_with_progress's SIGINT handler (state["interrupt"])."""
    state = {"error": None, "interrupt": False}

    def trampoline(user, handle, step, total):
        try:
            if state["interrupt"]:
                return 1
            return 1 if fn is not None and fn(int(step), int(total)) else 0
        except BaseException as e:  # KeyboardInterrupt included: stop cleanly
            state["error"] = e
            return 1

    return cfunctype(trampoline), state


def _run_with_progress(handle, c_function, max_steps, progress, every, cfunctype):
    """mpnas_supernet_search / mpnas_model_train with a progress callback (see
    _progress_trampoline). Ctrl-C stops the run cleanly (CANCELLED in C, then
    KeyboardInterrupt here): Python's own SIGINT handler would raise inside the callback,
    where the exception could escape at the callback's first line and be lost, so while
    the call runs (in the main thread, with Python's default handler installed) a handler
    that only notes the signal is installed, and the callback runs every step to see
    it. The handle is marked busy meanwhile, so that a callback that closes it (or its
    context) gets a StateError instead of freeing it under the call."""
    max_steps = _int64(max_steps, "max_steps")
    every = _int64(every, "every") if progress is not None else 1
    cb, state = _progress_trampoline(progress, cfunctype)
    previous = None
    if (threading.current_thread() is threading.main_thread() and
            signal.getsignal(signal.SIGINT) is signal.default_int_handler):
        def note_interrupt(signum, frame):
            state["interrupt"] = True
        previous = signal.signal(signal.SIGINT, note_interrupt)
    handle._progress = cb  # referenced while in use
    handle._busy += 1
    try:
        status = getattr(_L(), c_function)(handle._handle(), max_steps, cb, None, every)
    finally:
        handle._busy -= 1
        handle._progress = None
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if state["error"] is not None or state["interrupt"]:
        handle._context._error(status)  # clear the stored CANCELLED
        raise state["error"] if state["error"] is not None else KeyboardInterrupt()
    handle._check(status, c_function)


class _Parameterised(_Handle):
    """set/get/configure for handles with int and real parameters."""

    _what = ""
    _set_int_fn = _get_int_fn = _set_double_fn = _get_double_fn = None

    def set_int(self, param, value):
        """Set an integer parameter by name, constant name or code."""
        code, _, enum, _ = _param_spec(self._what, param)
        if enum is not None:
            value = _enum_value(enum, value)
        self._call(self._set_int_fn, self._handle(), code,
                   _int64(value, "parameter %r" % (param,)))

    def set_double(self, param, value):
        """Set a real-valued parameter by name, constant name or code."""
        code = _param_spec(self._what, param)[0]
        self._call(self._set_double_fn, self._handle(), code,
                   _real(value, "parameter %r" % (param,)))

    def get_int(self, param):
        code = _param_spec(self._what, param)[0]
        v = _c_i64()
        self._call(self._get_int_fn, self._handle(), code, ctypes.byref(v))
        return v.value

    def get_double(self, param):
        code = _param_spec(self._what, param)[0]
        v = _c_double()
        self._call(self._get_double_fn, self._handle(), code, ctypes.byref(v))
        return v.value

    def set(self, param, value):
        """Set a parameter by name, picking the integer or real setter from its type
        (for a bare code: a float value uses the real setter)."""
        code, kind, _, _ = _param_spec(self._what, param)
        if kind is None:
            kind = "d" if isinstance(value, float) else "i"
        if kind == "d":
            self.set_double(param, value)
        else:
            self.set_int(param, value)

    def get(self, param):
        code, kind, _, _ = _param_spec(self._what, param)
        return self.get_double(param) if kind == "d" else self.get_int(param)

    def configure(self, **params):
        """Set several parameters at once: configure(steps=100, learning_rate=0.05)."""
        for name, value in params.items():
            self.set(name, value)
        return self

    def param_info(self, param=None):
        """mpnas.param_info(self, param): what a parameter of this handle accepts (a
        ParamInfo), or all of them as a dict by name."""
        return param_info(self, param)

    def parameters(self):
        """Every readable parameter as a dict (names as in configure())."""
        out = {}
        for name in _params(self._what):
            try:
                out[name] = self.get(name)
            except MpnasError:
                pass
        return out


class Supernet(_Parameterised):
    """The one-shot super-network over a copy of a space, its domains and the search:
    Supernet(space). Parameters by name (see configure()): method, steps, train_batch,
    valid_batch, warmup_fraction, learning_rate, ..., abdp_* (docs/SEARCH.md)."""

    _free_fn = "mpnas_supernet_free"
    _kind = "Supernet"
    _what = "search"
    _set_int_fn, _get_int_fn = "mpnas_supernet_set_int", "mpnas_supernet_get_int"
    _set_double_fn, _get_double_fn = "mpnas_supernet_set_double", "mpnas_supernet_get_double"

    def __init__(self, space, context=None):
        if not isinstance(space, Space):
            raise InvalidArgumentError(-1, "Supernet(space): space must be a Space")
        context = context or space.context
        h = _c_vp()
        status = _L().mpnas_supernet_create(context._handle(), space._handle(), ctypes.byref(h))
        if status != OK:
            raise context._error(status, "mpnas_supernet_create")
        self._init_handle(h.value, context, owned=True, parent=context)
        self._names = []
        self._classes = []
        self._progress = None

    @property
    def context(self):
        return self._context

    @property
    def space(self):
        """The supernet's own copy of the space (a view; valid while this lives)."""
        out = _c_vp()
        self._call("mpnas_supernet_space", self._handle(), ctypes.byref(out))
        return Space._borrow(out.value, self)

    def add_domain(self, name, num_classes):
        """Add a domain; returns its index."""
        d = _c_i32()
        num_classes = _int32(num_classes, "num_classes")
        self._call("mpnas_supernet_add_domain", self._handle(), _name_arg(name), num_classes,
                   ctypes.byref(d))
        self._names.append(name)
        self._classes.append(num_classes)
        return d.value

    @property
    def num_domains(self):
        n = _c_i32()
        self._call("mpnas_supernet_num_domains", self._handle(), ctypes.byref(n))
        return n.value

    @property
    def domains(self):
        """Domain names in index order."""
        return list(self._names)

    def domain_index(self, domain):
        """A domain's index from its name (an int is returned as is)."""
        if isinstance(domain, str):
            try:
                return self._names.index(domain)
            except ValueError:
                raise InvalidArgumentError(-1, "no domain named %r (domains: %s)"
                                           % (domain, ", ".join(self._names)))
        return _int32(domain, "domain")

    def set_data(self, domain, images, labels, split="train", dtype=None, count=None):
        """Hand a domain's images in (copied by the library): any buffer of uint8
        (0..255) or float32 values, NHWC: an array of shape (N, H, W, C) (one-channel
        (N, H, W) or (N, H, W, 1) is replicated to C channels) or a flat buffer of a
        whole number of H x W x C images, and exactly one integer label per image
        (count=, if given, must agree). dtype "u8"/"f32" forces a conversion; other
        element types (float64, int) are converted (docs/PYTHON.md, "Images and labels")."""
        d = self.domain_index(domain)
        buf = _Buffer(images, self.space.input_shape, dtype, count, labels)
        self._call("mpnas_supernet_set_data", self._handle(), d, _enum_value("split", split),
                   buf.dtype, buf.address, buf.label_address, buf.count)

    def set_fixed_path(self, path):
        arr, addr, n = self.space._path(path)
        self._call("mpnas_supernet_set_fixed_path", self._handle(), addr, n)

    def search(self, max_steps=0, progress=None, every=10):
        """Run (or resume) the search for at most max_steps more steps (0 = to the end).
        progress(step, total) is called every `every` steps and at the end; returning
        a true value stops the search, which raises CancelledError (call search()
        again to resume). An exception in progress stops the search and is re-raised.
        Returns the number of steps done so far."""
        _run_with_progress(self, "mpnas_supernet_search", max_steps, progress, every,
                           _SEARCH_PROGRESS_FN)
        return self.step

    step = property(lambda self: self.get_int("step"), doc="Search steps done so far.")

    def domain_stat(self, domain, stat):
        """One statistic ("train_loss", "valid_accuracy", "reward", "cost",
        "loss_weight", "train_size", "valid_size", "macs", "params", "batch_images")."""
        code = _STATS[stat] if isinstance(stat, str) else int(stat)
        v = _c_double()
        self._call("mpnas_supernet_domain_stat", self._handle(), self.domain_index(domain),
                   code, ctypes.byref(v))
        return v.value

    def domain_stats(self, domain):
        """Every statistic the supernet keeps for a domain, as a dict."""
        out = {}
        for name, code in _STATS.items():
            try:
                out[name] = self.domain_stat(domain, code)
            except UnknownParameterError:
                pass
        return out

    def controller(self, domain):
        out = _c_vp()
        self._call("mpnas_supernet_controller", self._handle(), self.domain_index(domain),
                   ctypes.byref(out))
        space = self.space
        return Controller._borrow(out.value, self,
                                  [space.num_ops(l) for l in range(space.num_layers)])

    def path(self, domain):
        """A domain's current result path (op indices)."""
        n = self.space.num_layers
        out = (_c_i32 * max(n, 1))()
        self._call("mpnas_supernet_path", self._handle(), self.domain_index(domain), out, n)
        return list(out[:n])

    def path_string(self, domain):
        return self.space.path_string(self.path(domain))

    def paths(self):
        """Every domain's path, as a dict name -> op indices."""
        return {name: self.path(i) for i, name in enumerate(self._names)}

    def jaccard(self, numpy=None):
        """The Jaccard similarity of the domains' current paths (a D x D numpy
        array where numpy is used, see Predictor.run; else a list of lists)."""
        return self.space.jaccard([self.path(d) for d in range(len(self._names))], numpy)

    def latency_table(self, numpy=None):
        """The latency cost model in seconds (a numpy array
        where numpy is used, see Predictor.run; else a list)."""
        count = _c_size()
        self._call("mpnas_supernet_latency_table", self._handle(), None, 0, ctypes.byref(count))
        out = (_c_double * max(count.value, 1))()
        self._call("mpnas_supernet_latency_table", self._handle(), out, count.value,
                   ctypes.byref(count))
        return _doubles(out[:count.value], None, count.value, numpy, "latency_table")

    def set_latency_table(self, seconds):
        arr = array.array("d", [float(s) for s in seconds])
        self._call("mpnas_supernet_set_latency_table", self._handle(),
                   arr.buffer_info()[0] if len(arr) else None, len(arr))

    def save_checkpoint(self, path):
        self._call("mpnas_supernet_save_checkpoint", self._handle(), _path_arg(path))

    def load_checkpoint(self, path):
        self._call("mpnas_supernet_load_checkpoint", self._handle(), _path_arg(path))

    def load_checkpoint_buffer(self, data):
        """Load a search checkpoint from bytes (or any buffer) holding a checkpoint file."""
        if not isinstance(data, bytes):
            data = memoryview(data).tobytes()  # a contiguous copy the call can point at
        self._call("mpnas_supernet_load_checkpoint_buffer", self._handle(), data, len(data))

    def __repr__(self):
        if self.closed:
            return "<mpnas.Supernet closed>"
        return "<mpnas.Supernet domains=%s step=%d>" % (self._names, self.step)


class Model(_Parameterised):
    """The deployable multi-path model. Create it with Model.from_supernet(sn),
    Model.create(space, [(name, classes, path), ...]) or Model(space) + add_domain,
    or load one with Model.load(ctx, path) / Model.load_buffer(ctx, data).
    Training parameters by name (configure()): steps, batch, optimizer,
    learning_rate, warmup_fraction, momentum, weight_decay, label_smoothing,
    augment_pad, valid_batch, valid_every, validation_fraction, abdp_*."""

    _free_fn = "mpnas_model_free"
    _kind = "Model"
    _what = "model"
    _set_int_fn, _get_int_fn = "mpnas_model_set_int", "mpnas_model_get_int"
    _set_double_fn, _get_double_fn = "mpnas_model_set_double", "mpnas_model_get_double"

    def __init__(self, space, context=None):
        if not isinstance(space, Space):
            raise InvalidArgumentError(-1, "Model(space): space must be a Space")
        context = context or space.context
        h = _c_vp()
        status = _L().mpnas_model_create(context._handle(), space._handle(), ctypes.byref(h))
        if status != OK:
            raise context._error(status, "mpnas_model_create")
        self._setup(h.value, context)

    def _setup(self, handle, context):
        self._init_handle(handle, context, owned=True, parent=context)
        self._progress = None

    @classmethod
    def _wrap(cls, handle, context):
        self = cls.__new__(cls)
        self._setup(handle, context)
        return self

    @classmethod
    def create(cls, space, domains):
        """A model over `space` with domains [(name, classes, path), ...] (a path as op
        indices or text); a dict {name: (classes, path)} works too."""
        self = cls(space)
        try:
            items = domains.items() if hasattr(domains, "items") else domains
            for item in items:
                if hasattr(domains, "items"):
                    name, (classes, path) = item
                else:
                    name, classes, path = item
                self.add_domain(name, classes, path)
        except BaseException:
            self.close()
            raise
        return self

    @classmethod
    def from_supernet(cls, supernet):
        """A model from a searched supernet: its space, domains, COPIES of their data
        and each domain's result path; fresh weights (it trains from scratch)."""
        h = _c_vp()
        status = _L().mpnas_model_create_from_supernet(supernet._handle(), ctypes.byref(h))
        if status != OK:
            raise supernet._context._error(status, "mpnas_model_create_from_supernet")
        return cls._wrap(h.value, supernet._context)

    @classmethod
    def load(cls, context, path):
        """Load a saved model file."""
        h = _c_vp()
        status = _L().mpnas_model_load(context._handle(), _path_arg(path), ctypes.byref(h))
        if status != OK:
            raise context._error(status, "mpnas_model_load")
        return cls._wrap(h.value, context)

    @classmethod
    def load_buffer(cls, context, data):
        """Load a model from bytes (or any buffer) written by save_buffer()."""
        if not isinstance(data, bytes):
            data = memoryview(data).tobytes()  # a contiguous copy the call can point at
        h = _c_vp()
        status = _L().mpnas_model_load_buffer(context._handle(), data, len(data),
                                              ctypes.byref(h))
        if status != OK:
            raise context._error(status, "mpnas_model_load_buffer")
        return cls._wrap(h.value, context)

    @property
    def context(self):
        return self._context

    @property
    def space(self):
        """The model's own space (a view; valid while the model lives)."""
        out = _c_vp()
        self._call("mpnas_model_space", self._handle(), ctypes.byref(out))
        return Space._borrow(out.value, self)

    def add_domain(self, name, num_classes, path):
        arr, addr, n = self.space._path(path)
        d = _c_i32()
        self._call("mpnas_model_add_domain", self._handle(), _name_arg(name),
                   _int32(num_classes, "num_classes"), addr, n, ctypes.byref(d))
        return d.value

    @property
    def num_domains(self):
        n = _c_i32()
        self._call("mpnas_model_num_domains", self._handle(), ctypes.byref(n))
        return n.value

    def domain_name(self, domain):
        needed = _c_size()
        buf = ctypes.create_string_buffer(64)
        self._call("mpnas_model_domain_name", self._handle(), _int32(domain, "domain"), buf,
                   len(buf),
                   ctypes.byref(needed))
        return buf.value.decode("utf-8", "replace")

    @property
    def domains(self):
        """Domain names in index order."""
        return [self.domain_name(d) for d in range(self.num_domains)]

    def domain_index(self, domain):
        if isinstance(domain, str):
            names = self.domains
            if domain not in names:
                raise InvalidArgumentError(-1, "no domain named %r (domains: %s)"
                                           % (domain, ", ".join(names)))
            return names.index(domain)
        return _int32(domain, "domain")

    def domain_classes(self, domain):
        c = _c_i32()
        self._call("mpnas_model_domain_classes", self._handle(), self.domain_index(domain),
                   ctypes.byref(c))
        return c.value

    def path(self, domain):
        n = self.space.num_layers
        out = (_c_i32 * max(n, 1))()
        self._call("mpnas_model_path", self._handle(), self.domain_index(domain), out, n)
        return list(out[:n])

    def path_string(self, domain):
        return self.space.path_string(self.path(domain))

    def set_data(self, domain, images, labels, split="train", dtype=None, count=None):
        """Training (or validation) data of a domain, as Supernet.set_data."""
        d = self.domain_index(domain)
        buf = _Buffer(images, self.space.input_shape, dtype, count, labels)
        self._call("mpnas_model_set_data", self._handle(), d, _enum_value("split", split),
                   buf.dtype, buf.address, buf.label_address, buf.count)

    def clear_data(self):
        self._call("mpnas_model_clear_data", self._handle())

    def set_domain_int(self, domain, param, value):
        """A per-domain setting ("hflip" or MPNAS_DOMAIN_* code)."""
        code = _param_spec("domain", param)[0]
        self._call("mpnas_model_set_domain_int", self._handle(), self.domain_index(domain),
                   code, _int64(value, "parameter %r" % (param,)))

    def train(self, max_steps=0, progress=None, every=10):
        """Train (or resume) for at most max_steps more steps (0 = to the end).
        progress(step, total) as in Supernet.search (a true result cancels with
        CancelledError; an exception cancels and is re-raised). Returns the steps done."""
        _run_with_progress(self, "mpnas_model_train", max_steps, progress, every,
                           _TRAIN_PROGRESS_FN)
        return self.step

    step = property(lambda self: self.get_int("step"), doc="Training steps done so far.")
    params = property(lambda self: self.get_int("params"),
                      doc="Unique parameters (shared nodes once, classifiers included).")
    macs = property(lambda self: self.get_int("macs"),
                    doc="Sum over domains of their path's multiply-accumulates per image.")
    nodes = property(lambda self: self.get_int("num_nodes"), doc="Distinct non-zero nodes.")
    num_layers = property(lambda self: self.get_int("num_layers"))

    def domain_stat(self, domain, stat):
        """"train_loss", "valid_accuracy", "loss_weight", "train_size", "valid_size",
        "macs", "params", "batch_images"."""
        code = _STATS[stat] if isinstance(stat, str) else int(stat)
        v = _c_double()
        self._call("mpnas_model_domain_stat", self._handle(), self.domain_index(domain), code,
                   ctypes.byref(v))
        return v.value

    def domain_stats(self, domain):
        """Every statistic the model keeps for a domain, as a dict."""
        out = {}
        for name, code in _STATS.items():
            try:
                out[name] = self.domain_stat(domain, code)
            except UnknownParameterError:
                pass
        return out

    def evaluate(self, domain, images, labels, dtype=None, count=None):
        """Evaluation(top1, loss) of labelled images of a domain."""
        d = self.domain_index(domain)
        buf = _Buffer(images, self.space.input_shape, dtype, count, labels)
        top1, loss = _c_double(), _c_double()
        self._call("mpnas_model_evaluate", self._handle(), d, buf.dtype, buf.address,
                   buf.label_address, buf.count, ctypes.byref(top1), ctypes.byref(loss))
        return Evaluation(top1.value, loss.value)

    def node_users(self, layer, op):
        """How many domains use node (layer, op): 0 unused, 1 exclusive, >= 2 shared."""
        u = _c_i32()
        self._call("mpnas_model_node_users", self._handle(), _int32(layer, "layer"),
                   _int32(op, "op"), ctypes.byref(u))
        return u.value

    def jaccard(self, numpy=None):
        """The Jaccard similarity of the domains' node sets (a D x D numpy
        array where numpy is used, see Predictor.run; else a list of lists)."""
        d = self.num_domains
        out = (_c_double * max(d * d, 1))()
        self._call("mpnas_model_jaccard", self._handle(), out, d * d)
        return _doubles(out[:d * d], d, d, numpy, "jaccard")

    def save(self, path):
        self._call("mpnas_model_save", self._handle(), _path_arg(path))

    def save_buffer(self):
        """The saved model as bytes."""
        size = _c_size()
        self._call("mpnas_model_save_buffer", self._handle(), None, 0, ctypes.byref(size))
        buf = ctypes.create_string_buffer(max(size.value, 1))
        self._call("mpnas_model_save_buffer", self._handle(), buf, size.value, ctypes.byref(size))
        return buf.raw[:size.value]

    def export_onnx(self, domain, path=None):
        """One domain's path (a name or an index) as an ONNX model (docs/EXPORT.md):
        input "input" float32 NCHW [N, C, H, W] of raw pixel values, output "logits"
        [N, classes]. Writes `path`; without one, returns the bytes."""
        d = self.domain_index(domain)
        if path is not None:
            self._call("mpnas_model_export_onnx", self._handle(), d, _path_arg(path))
            return None
        size = _c_size()
        self._call("mpnas_model_export_onnx_buffer", self._handle(), d, None, 0,
                   ctypes.byref(size))
        buf = ctypes.create_string_buffer(max(size.value, 1))
        self._call("mpnas_model_export_onnx_buffer", self._handle(), d, buf, size.value,
                   ctypes.byref(size))
        return buf.raw[:size.value]

    def save_checkpoint(self, path):
        self._call("mpnas_model_save_checkpoint", self._handle(), _path_arg(path))

    def load_checkpoint(self, path):
        self._call("mpnas_model_load_checkpoint", self._handle(), _path_arg(path))

    def load_checkpoint_buffer(self, data):
        """Load a training checkpoint from bytes (or any buffer) holding a checkpoint file."""
        if not isinstance(data, bytes):
            data = memoryview(data).tobytes()  # a contiguous copy the call can point at
        self._call("mpnas_model_load_checkpoint_buffer", self._handle(), data, len(data))

    def quantize(self, calibration_images=0):
        """Quantise the trained model to int8 (docs/QUANTIZATION.md), calibrating each
        domain on up to calibration_images of its training images (0: 256); the domains'
        training data must be set. Predictors then run it with precision="int8"."""
        self._call("mpnas_model_quantize", self._handle(),
                   _int32(calibration_images, "calibration_images"))

    def drop_float(self):
        """Make a quantised model int8 only: save() then writes a deployment file about
        4x smaller; training, float predictors and the ONNX export are refused."""
        self._call("mpnas_model_drop_float", self._handle())

    @property
    def quantized(self):
        """0 float only, 1 float and int8, 2 int8 only."""
        return self.get_int("quantized")

    def predictor(self, precision=None):
        """A Predictor on this model (one per thread); precision "float32" or "int8"
        (default: the model's, float32 unless the model is int8 only)."""
        p = Predictor(self)
        if precision is not None:
            p.precision = precision
        return p

    def __repr__(self):
        if self.closed:
            return "<mpnas.Model closed>"
        return "<mpnas.Model domains=%s>" % (self.domains,)


class Predictor(_Handle):
    """Runs a model's domains on batches: Predictor(model) or model.predictor(). Keeps
    its model alive; closing the model closes its predictors."""

    _free_fn = "mpnas_predictor_free"
    _kind = "Predictor"

    def __init__(self, model):
        h = _c_vp()
        status = _L().mpnas_predictor_create(model._handle(), ctypes.byref(h))
        if status != OK:
            raise model._context._error(status, "mpnas_predictor_create")
        self._init_handle(h.value, model._context, owned=True, parent=model)
        self.model = model
        self._input_shape = model.space.input_shape
        self._classes = {}

    def run(self, domain, images, output="logits", flat=False, dtype=None, count=None,
            out=None, numpy=None):
        """Classify images of a domain (name or index): count x classes logits (or
        probabilities with output="probabilities"). Returns a float32 numpy array of
        shape (count, classes) (flat=True: (count * classes,)) when numpy is installed
        (numpy=None, the default) or numpy=True; with numpy=False, or without numpy, a
        list of per-image lists (flat=True: one array.array('f')). With `out` (any writable float32 buffer of at least count x classes
        values, e.g. a numpy array) the results are written there and `out` is
        returned."""
        d = self.model.domain_index(domain)
        if d not in self._classes:
            self._classes[d] = self.model.domain_classes(d)
        classes = self._classes[d]
        buf = _Buffer(images, self._input_shape, dtype, count)
        n = buf.count * classes
        if buf.count == 0:  # nothing to run (the C call takes 1 image or more)
            _enum_value("output", output)
            if out is not None:
                return out
            np = _numpy(numpy, "run")
            if np is not None:
                arr = np.zeros(0, dtype="float32")
                return arr if flat else arr.reshape(0, classes)
            return array.array("f") if flat else []
        if out is not None:
            mv = memoryview(out)
            if mv.readonly or _native_format(mv.format) != "f" or not mv.c_contiguous:
                raise InvalidArgumentError(-1, "out must be a writable, contiguous float32 buffer")
            if mv.nbytes < 4 * n:
                raise InvalidArgumentError(-1, "out has %d values, %d needed" % (mv.nbytes // 4, n))
            c = (ctypes.c_char * mv.nbytes).from_buffer(mv.cast("B"))
            addr, cap = ctypes.addressof(c), mv.nbytes // 4
        else:
            result = array.array("f", bytes(4 * n))
            addr, cap = (result.buffer_info()[0] if n else None), n
        self._call("mpnas_predictor_run", self._handle(), d, buf.dtype, buf.address,
                   buf.count, _enum_value("output", output), addr, cap)
        if out is not None:
            del c
            return out
        np = _numpy(numpy, "run")
        if np is not None:
            arr = np.frombuffer(result, dtype="float32")  # no copy: shares result
            return arr if flat else arr.reshape(buf.count, classes)
        if flat:
            return result
        return [result[i * classes:(i + 1) * classes].tolist() for i in range(buf.count)]

    @property
    def precision(self):
        """"float32" or "int8": the form of the model this predictor runs. Setting
        "int8" needs a quantised model (Model.quantize)."""
        v = _c_i32()
        self._call("mpnas_predictor_get_precision", self._handle(), ctypes.byref(v))
        return {0: "float32", 1: "int8"}[v.value]

    @precision.setter
    def precision(self, value):
        self._call("mpnas_predictor_set_precision", self._handle(),
                   _enum_value("precision", value))

    def predict(self, domain, images, dtype=None, count=None, numpy=None):
        """Top-1 class of each image: a numpy int array where numpy is used (see run),
        else a list of ints."""
        if _numpy(numpy, "predict") is not None:
            return self.run(domain, images, dtype=dtype, count=count, numpy=True).argmax(axis=1)
        rows = self.run(domain, images, dtype=dtype, count=count, numpy=False)
        return [max(range(len(r)), key=r.__getitem__) for r in rows]

    def __repr__(self):
        return "<mpnas.Predictor%s>" % (" closed" if self.closed else "")


# ---- Image folders ------------------------------------------------------------------------

FolderImages = namedtuple("FolderImages", "images labels classes")
FolderImages.__doc__ = """A folder of images: images (N x H x W x C uint8; a numpy array when
numpy is installed, else a bytearray), labels (N class indices; a numpy int32 array, else
array('i')) and classes (the class names: label k is classes[k])."""

_IMAGE_EXTENSIONS = frozenset((".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".pnm",
                               ".tif", ".tiff", ".webp"))


def _to_8bit(im, file):
    """A Pillow image with more than 8 bits per value in 8 bits: 16-bit grey (modes "I;16*",
    and "I" with values up to 65535, as Pillow opens 16-bit PNGs) scaled by 255/65535.
    convert() alone would clip those values to 255 (an almost white image). Float or
    wider-integer images have no known range: InvalidArgumentError."""
    if im.mode.startswith("I;16"):
        im = im.convert("I")
    if im.mode == "I":
        low, high = im.getextrema()
        if low < 0 or high > 65535:
            raise InvalidArgumentError(-1, "image_folder: %s: 32-bit integer values %d..%d "
                                           "(only 8- and 16-bit images are read)"
                                       % (file, low, high))
        return im.point(lambda v: v * (255.0 / 65535.0) + 0.5)
    if im.mode == "F":
        raise InvalidArgumentError(-1, "image_folder: %s: a floating-point image (mode F) has "
                                       "no known range; save it as 8 or 16 bits" % (file,))
    return im


def image_folder(path, size, channels=3):
    """Load a domain stored as a folder with one subfolder per class: the subfolders in
    sorted order are classes 0, 1, ...; in each, every image file (by extension: .png,
    .jpg, .jpeg, .bmp, .gif, .ppm, .pgm, .pnm, .tif, .tiff, .webp; other files and hidden
    ones are ignored), in sorted order, read with Pillow, converted to RGB (channels=3) or
    grey (channels=1) and resized (bilinear) to size x size, or to size = (height, width).
    Returns FolderImages(images, labels, classes), ready for set_data:

        data = mpnas.image_folder("flowers/train", 32)
        sn.add_domain("flowers", len(data.classes))
        sn.set_data("flowers", data.images, data.labels)

    Needs Pillow (ImportError saying so without it); numpy is optional. A folder without
    class subfolders, a class without images or a file Pillow cannot read raises
    InvalidArgumentError naming it."""
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("mpnas.image_folder reads images with Pillow, which is not installed "
                          "(Debian: apt-get install python3-pil; pip install Pillow)")
    h, w = (size, size) if isinstance(size, numbers.Integral) else tuple(size)
    h, w = _integer(h, "size"), _integer(w, "size")
    if h < 1 or w < 1 or channels not in (1, 3):
        raise InvalidArgumentError(-1, "image_folder: size %r must be positive and channels "
                                       "1 or 3, got %r" % (size, channels))
    root = os.fspath(path)
    if not os.path.isdir(root):
        raise InvalidArgumentError(-1, "image_folder: %r is not a folder" % (root,))
    classes = sorted(e for e in os.listdir(root)
                     if not e.startswith(".") and os.path.isdir(os.path.join(root, e)))
    if not classes:
        raise InvalidArgumentError(-1, "image_folder: %r has no subfolders (one per class)"
                                   % (root,))
    mode = "RGB" if channels == 3 else "L"
    resample = getattr(Image, "Resampling", Image).BILINEAR  # Pillow >= 9.1 and older
    pixels, labels = bytearray(), array.array("i")
    for k, name in enumerate(classes):
        folder = os.path.join(root, name)
        files = sorted(f for f in os.listdir(folder) if not f.startswith(".") and
                       os.path.splitext(f)[1].lower() in _IMAGE_EXTENSIONS)
        if not files:
            raise InvalidArgumentError(-1, "image_folder: the class folder %r has no images"
                                       % (folder,))
        for f in files:
            file = os.path.join(folder, f)
            try:
                with Image.open(file) as im:
                    im = _to_8bit(im, file)
                    im = im.convert(mode)
                    if im.size != (w, h):
                        im = im.resize((w, h), resample)
                    pixels += im.tobytes()
            except (OSError, ValueError) as e:
                raise InvalidArgumentError(-1, "image_folder: %s: Pillow cannot read it (%s)"
                                           % (file, e))
            labels.append(k)
    try:
        import numpy
    except ImportError:
        return FolderImages(pixels, labels, classes)
    images = numpy.frombuffer(pixels, dtype=numpy.uint8).reshape(len(labels), h, w, channels)
    return FolderImages(images, numpy.array(labels, dtype=numpy.int32), classes)
