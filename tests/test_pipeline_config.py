"""The run config: presets, TOML, command line, and what makes a stage re-run."""

from __future__ import annotations

import tomllib

import pytest

from tinynas.errors import UserError
from tinynas.pipeline.config import build_config, stage_hash, standalone_recipe, to_toml
from tinynas.pipeline.report import to_html, to_markdown


def test_precedence_preset_file_cli():
    cfg = build_config({"run": {"budget": "medium"}, "train": {"epochs": 7}},
                       {"train": {"epochs": 9}, "search": {"candidates": None}})
    assert cfg["run"]["budget"] == "medium"
    assert cfg["train"]["epochs"] == 9  # command line beats the file
    assert cfg["search"]["candidates"] == 300  # the medium preset, untouched
    assert build_config(tomllib.loads(to_toml(cfg)), {}) == cfg


@pytest.mark.parametrize("file_cfg, msg", [
    ({"trian": {"epochs": 1}}, "unknown section [trian]"),
    ({"train": {"epoch": 1}}, "unknown option train.epoch"),
    ({"train": {"epochs": "ten"}}, "train.epochs must be an integer"),
    ({"train": {"epochs": 0}}, "train.epochs must be at least 1"),
    ({"run": {"budget": "huge"}}, "budget 'huge'"),
    ({"export": {"io": "int4"}}, "export.io"),
    ({"space": {"block": "fused,dw"}}, "space.block: 'fused,dw' is not a block type"),
    ({"space": {"block": "mb,res,res,res,res,res,res"}},
     "space.block: 'mb,res,res,res,res,res,res' names 7 block types, but the mb space has 6 stages"),
    ({"finetune": {"min_epochs": 0}}, "finetune.min_epochs must be positive, got 0"),
    ({"train": {"paths": "fitting"}}, "train.paths must be searchable or all, got 'fitting'"),
    ({"train": {"weight_decay": -1e-4}}, "train.weight_decay must be in [0, 0.1), got -0.0001"),
])
def test_bad_config_is_one_line(file_cfg, msg):
    with pytest.raises(UserError) as e:
        build_config(file_cfg, {})
    assert msg in str(e.value) and "\n" not in str(e.value)


def test_stage_hash_changes_only_downstream():
    a = build_config(None, {"search": {"candidates": 40}})  # counts, not a clock (see test_timebudget)
    b = build_config(None, {"search": {"candidates": 99}})
    ups = {}
    for cfg, tag in ((a, "a"), (b, "b")):
        up = ""
        for st in ("space", "supernet", "search", "finetune"):
            up = stage_hash(cfg, st, up)
            ups[tag, st] = up
    assert ups["a", "space"] == ups["b", "space"] and ups["a", "supernet"] == ups["b", "supernet"]
    assert ups["a", "search"] != ups["b", "search"] and ups["a", "finetune"] != ups["b", "finetune"]
    c = build_config(None, {"run": {"out": "elsewhere"}, "search": {"candidates": 40}})
    assert stage_hash(c, "space") == stage_hash(a, "space")  # moving the output does not invalidate
    timed = build_config(None, {})  # under a clock the space's trainable-MACs cap follows the budget
    assert stage_hash(timed, "space") != stage_hash(build_config(None, {"run": {"time": "9m"}}), "space")
    # train.paths = "searchable" trains what the fine-tune can afford, so finetune.min_epochs moves the supernet
    for paths, moves in (("searchable", True), ("all", False)):
        x, y = (build_config(None, {"train": {"paths": paths}, "finetune": {"min_epochs": e}}) for e in (10.0, 4.0))
        assert (stage_hash(x, "supernet") != stage_hash(y, "supernet")) is moves


def test_markdown_and_html_from_one_block_list(tmp_path):
    blocks = [("h", 1, "T"), ("p", "a `x` <b>"), ("ul", ["i"]), ("table", ["h1", "h2"], [[1, 2]]),
              ("img", "missing.png", "alt"), ("code", "tinynas run")]
    md = to_markdown(blocks)
    assert "# T" in md and "| 1 | 2 |" in md and "![alt](missing.png)" in md
    h = to_html(blocks, tmp_path, "t")
    assert "<code>x</code> &lt;b&gt;" in h and "<td>1</td>" in h and "<pre>tinynas run</pre>" in h


def test_one_run_per_out_dir(tmp_path):
    from tinynas.pipeline.main import lock_out_dir

    held = lock_out_dir(tmp_path / "run")
    with pytest.raises(UserError, match="another tinynas run is using"):
        lock_out_dir(tmp_path / "run")
    held.close()
    lock_out_dir(tmp_path / "run").close()  # free again once the first run ends


def test_time_budget_round_trips_through_run_toml():
    for cli in ({}, {"run": {"time": "2h30m"}}, {"train": {"epochs": 3}}):
        cfg = build_config({"time": {"supernet": 0.5, "search": 0.2, "finetune": 0.3}}, cli)
        assert build_config(tomllib.loads(to_toml(cfg)), {}) == cfg


def test_standalone_recipe_follows_the_train_table():
    """Baselines and the scratch comparison train with the run's [train] recipe, old run.toml files too."""
    t = build_config(None, {"train": {"weight_decay": 2e-3, "lr": 0.1}})["train"]
    r = standalone_recipe(t)
    assert (r["weight_decay"], r["lr"], r["batch_size"]) == (2e-3, 0.1, t["batch_size"])
    old = {k: v for k, v in t.items() if k != "weight_decay"}  # a run.toml from before the key
    assert standalone_recipe(old)["weight_decay"] == 5e-5
