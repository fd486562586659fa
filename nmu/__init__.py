"""nmu: a reproducible package of "Towards Natural Machine Unlearning" (He et al., TPAMI 2025).

    import nmu
    exp = nmu.Experiment("quick")                        # profile: smoke | quick | paper
    split = exp.split("random", fraction=0.1)
    result = nmu.unlearn("natmu", exp.original().model, exp.data, split)

``nmu.METHODS`` lists every unlearning method (NatMU and the baselines).
"""

from nmu import natmu, baselines  # noqa: F401, I001  (fill METHODS: NatMU first, then the baselines)
from nmu.data import Dataset, load_dataset
from nmu.experiment import Experiment
from nmu.profiles import PROFILES, get_profile
from nmu.splits import Split
from nmu.train import Recipe, accuracy, fit, predict
from nmu.unlearn import METHODS, unlearn

__all__ = ["METHODS", "PROFILES", "Dataset", "Experiment", "Recipe", "Split", "accuracy", "fit",
           "get_profile", "load_dataset", "predict", "unlearn"]
