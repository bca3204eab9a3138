import hashlib
import json

import pytest

from lmm_envs.errors import ConfigError, UnknownPieceError
from lmm_envs.music import corpus


def test_manifest_is_stable_and_self_consistent():
    data = json.loads(corpus.MANIFEST_PATH.read_text())
    rows = data["pieces"]
    assert data["hash"] == hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()
    for row in rows:  # splits and pools are functions of the id alone: they never drift
        assert row["split"] == corpus.assign_split(row["id"])
        assert row["pool"] == (corpus.assign_pool(row["id"]) if row["split"] == "train" else None)


def test_both_collections_and_all_splits_are_there():
    assert len(corpus.piece_ids(collection="bach")) > 300
    assert len(corpus.piece_ids(collection="ryans")) > 500
    sizes = {s: len(corpus.piece_ids(split=s)) for s in corpus.SPLITS}
    assert sizes["train"] > sizes["val"] > 100 and sizes["test"] > 100
    pools = [set(corpus.piece_ids(pool=p)) for p in corpus.POOLS]
    assert not (pools[0] & pools[1]) and not (pools[0] & pools[2]) and not (pools[1] & pools[2])
    assert set().union(*pools) == set(corpus.piece_ids(split="train"))


def test_sources_exist_in_music21_with_the_recorded_content():
    for pid in corpus.piece_ids(split="test")[::15]:
        path = corpus.source_path(pid)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == corpus.piece_info(pid).sha256


def test_paired_budget_is_a_fixed_prefix():
    eight, sixty_four = corpus.paired_ids(8), corpus.paired_ids(64)
    assert len(eight) == 8 and sixty_four[:8] == eight
    assert set(sixty_four) <= set(corpus.piece_ids(pool="paired"))


@pytest.mark.parametrize("budget", [0, -1, 10_000, 2.5])
def test_bad_budgets_are_refused(budget):
    with pytest.raises(ConfigError, match="paired"):
        corpus.paired_ids(budget)


def test_unknown_piece_and_split():
    with pytest.raises(UnknownPieceError, match="lmm-envs data list"):
        corpus.piece_info("bach/bwv99999")
    with pytest.raises(ConfigError, match="unknown split"):
        corpus.piece_ids(split="holdout")
