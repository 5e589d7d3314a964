"""Recipes: strict types, unknown keys and sections, overrides, resolved round trip."""
from __future__ import annotations

import tomllib

import pytest

from ganzoo.config import apply_overrides, dump_toml, load_recipe, read_toml, recipe_to_dict
from ganzoo.errors import RecipeError


def test_tiny_recipe_loads_into_typed_objects(tiny_recipe, registry):
    recipe = load_recipe(read_toml(tiny_recipe), registry, source=str(tiny_recipe))
    assert recipe.generator.name == "resnet_6blocks" and recipe.generator.config.ngf == 4
    assert recipe.discriminator.config.ndf == 4
    assert recipe.optim.lr == 2e-4 and recipe.optim.beta1 == 0.5
    assert recipe.method.config.lambda_a == 10.0 and recipe.method.config.pool_size == 50
    assert recipe.run.max_steps == 2


@pytest.mark.parametrize(
    "section, key, value, expected",
    [
        ("generator", "ngff", 8, ['[generator] ngff', 'Did you mean "ngf"']),
        ("generator", "ngf", "wide", ["[generator] ngf", "expected int"]),
        ("generator", "ngf", 3.5, ["[generator] ngf", "expected int"]),
        ("generator", "norm", "instanse", ["[generator] norm", 'Did you mean "instance"']),
        ("run", "max_steps", -1, ["[run] max_steps", ">= 0"]),
        ("run", "seed", True, ["[run] seed", "expected int"]),
        ("optim", "lr", 0, ["[optim] lr", "> 0"]),
        ("data", "batch_size", 0, ["[data] batch_size", ">= 1"]),
        ("data", "bogus", 1, ["[data] bogus", "unknown key", "Core [data] keys"]),
        ("method", "lambda_identiy", 1.0, ['Did you mean "lambda_identity"']),
    ],
)
def test_bad_values_name_file_section_and_key(tiny_recipe, registry, section, key, value, expected):
    raw = read_toml(tiny_recipe)
    raw.setdefault(section, {})[key] = value
    with pytest.raises(RecipeError) as err:
        load_recipe(raw, registry, source=str(tiny_recipe))
    msg = str(err.value)
    assert msg.startswith(str(tiny_recipe))
    for part in expected:
        assert part in msg


def test_unknown_section_and_unknown_component(tiny_recipe, registry):
    raw = read_toml(tiny_recipe)
    raw["genrator"] = {"name": "x"}
    with pytest.raises(RecipeError, match=r'unknown section \[genrator\]. Did you mean "\[generator\]"'):
        load_recipe(raw, registry, source="r.toml")
    raw = read_toml(tiny_recipe)
    raw["generator"]["name"] = "resnet_9block"
    with pytest.raises(RecipeError, match=r'\[generator\] name="resnet_9block": unknown generator "resnet_9block". Did you mean "resnet_9blocks"'):
        load_recipe(raw, registry, source="r.toml")
    raw = read_toml(tiny_recipe)
    del raw["loss"]
    with pytest.raises(RecipeError, match=r'\[loss\]: missing key "name".*lsgan'):
        load_recipe(raw, registry, source="r.toml")


def test_malformed_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[run\nname = 1")
    with pytest.raises(RecipeError, match=r"bad.toml: not valid TOML"):
        read_toml(bad)
    with pytest.raises(RecipeError, match="recipe file not found"):
        read_toml(tmp_path / "nope.toml")


def test_overrides_parse_toml_values_and_reject_unknown(tiny_recipe, registry):
    raw = apply_overrides(read_toml(tiny_recipe), ["generator.ngf=8", "generator.norm=batch", "run.name=other"])
    recipe = load_recipe(raw, registry)
    assert recipe.generator.config.ngf == 8
    assert recipe.generator.config.norm == "batch"
    assert recipe.run.name == "other"
    with pytest.raises(RecipeError, match=r'--set "gen.ngf=8": unknown section \[gen\]'):
        apply_overrides(raw, ["gen.ngf=8"])
    with pytest.raises(RecipeError, match="expected section.key=value"):
        apply_overrides(raw, ["ngf=8"])


def test_resolved_recipe_round_trips(tiny_recipe, registry):
    recipe = load_recipe(read_toml(tiny_recipe), registry, source="a")
    text = dump_toml(recipe_to_dict(recipe))
    again = load_recipe(tomllib.loads(text), registry, source="b")
    assert recipe_to_dict(again) == recipe_to_dict(recipe)
    assert "dropout = false" in text  # every default is written out


@pytest.mark.parametrize("path", sorted(__import__("pathlib").Path("recipes").glob("*.toml")), ids=str)
def test_shipped_recipes_validate(path, registry):
    load_recipe(read_toml(path), registry, source=str(path))
