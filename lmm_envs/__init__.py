"""lmm-envs: Gymnasium environments and a leaderboard for language model mapping (LMM) in music.

Importing the package registers the ``lmm/`` environment ids.
"""

from lmm_envs.envs import ENV_IDS, register_envs
from lmm_envs.errors import LMMError
from lmm_envs.music.score import Alignment, Note, Performance, Score, TempoMap
from lmm_envs.pieces import Piece, load_piece, prepare_piece

__version__ = "0.1.0"
__all__ = [
    "ENV_IDS", "Alignment", "LMMError", "Note", "Performance", "Piece", "Score", "TempoMap", "__version__",
    "load_piece", "prepare_piece", "register_envs",
]
