"""Weight-sharing supernet: elastic kernel/expand/depth, exact BN recalibration, candidate scoring.

    from tinynas.supernet import Supernet, load_supernet, recalibrate_bn, SupernetEvaluator
    sn = Supernet(spec); logits = sn(x, arch); model = sn.get_subnet(arch)
    sn, spec, data_meta = load_supernet("runs/supernet")
    ev = SupernetEvaluator(sn, bundle); accs = ev([arch1, arch2])
"""

from .bn_calib import DEFAULT_CALIB_IMAGES, calibration_batches, recalibrate_bn
from .evaluate import SupernetEvaluator, accuracy
from .io import load_supernet, save_supernet
from .supernet import Supernet, slice_index

__all__ = ["DEFAULT_CALIB_IMAGES", "Supernet", "SupernetEvaluator", "accuracy", "calibration_batches",
           "load_supernet", "recalibrate_bn", "save_supernet", "slice_index"]
