"""torchrl_mst: Module-Specific Training (MST) for MR.Q on TorchRL.

The paper's three modules keep one name everywhere in this package:

* ``encoder``: latent dynamics model (MR.Q's ``encoder``), trained dense;
* ``critic``: twin Q networks (MR.Q's ``value``), trained with RigL;
* ``actor``: deterministic policy (MR.Q's ``policy``), trained with a static ER mask.
"""

__version__ = "0.1.0"
