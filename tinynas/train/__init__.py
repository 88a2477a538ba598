"""Training: SPOS supernet training, fine-tuning, and their shared loop, optimizer and torchrun helpers.

    from tinynas.train import train_supernet, finetune, train_arch

(`tinynas.train.finetune` is therefore the function; the module's other names
import as `from tinynas.train.finetune import ...`.)
"""

from .finetune import finetune, train_arch
from .spos import PathFilter, train_supernet

__all__ = ["PathFilter", "finetune", "train_arch", "train_supernet"]
