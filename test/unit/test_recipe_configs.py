"""Every SER training config a recipe ships loads: known keys only, values in range, a registered model
whose own config accepts its keys (the papers' configs name hub models, so the models are not built)."""

from pathlib import Path

import pytest

from speechser.tasks.ser import load_ser_config

ROOT = Path(__file__).resolve().parents[2]
SER_CONFIGS = sorted(p for p in ROOT.glob("egs/*/ser1/conf/train*.yaml"))


def test_the_recipes_ship_ser_configs():
    names = {p.relative_to(ROOT).as_posix() for p in SER_CONFIGS}
    assert {"egs/emodb/ser1/conf/train_tdnn.yaml", "egs/emodb/ser1/conf/train_mlcnn.yaml",
            "egs/iemocap/ser1/conf/train_pcq.yaml"} <= names


@pytest.mark.parametrize("path", SER_CONFIGS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_a_recipe_ser_config_loads(path: Path):
    conf = load_ser_config(path, ["--data.train_dir", "x", "--data.valid_dir", "y", "--data.label_list", "z"])
    assert conf.model.name and isinstance(conf.model.conf, dict)


FUSION_CONFIGS = sorted(ROOT.glob("egs/*/ser1/conf/fuse*.yaml"))


@pytest.mark.parametrize("path", FUSION_CONFIGS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_a_recipe_fusion_config_loads_and_names_configs_of_the_recipe(path: Path):
    """A late-fusion config's members are experiment tags: each a training config of the recipe, or one
    trained with another seed (``<config>_seed<N>``, the tag of a seed ensemble's member)."""
    import re

    from speechser.combine.late_fusion import load_fusion_config

    conf = load_fusion_config(path)
    for member in conf.members:
        config = re.sub(r"_seed\d+$", "", member)
        assert (path.parent / f"{config}.yaml").is_file(), f"{path}: member '{member}' is no config of the recipe"
