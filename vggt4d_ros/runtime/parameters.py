# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Flat parameters <-> EngineConfig: one mapping for the node and the replay tool.

A parameter is a dotted name (``window.stride``, ``pipeline.refine.mode``, ``weights``) with a
default, a description, and the allowed values or range, all read from the config dataclasses:
the description and range from ``dataclasses.field(metadata={'description': ..., 'range':
(lo, hi)})``, the allowed values from a ``Literal`` type. Scalar fields (bool, int, float, str)
and fields with a list default (arrays of one scalar type, from the type hint: ``list[str]``,
``tuple[float, float]``) are parameters; an array has the default's length unless its metadata
says ``any_length``. Nested dataclasses recurse with their field name as a prefix; tuple
defaults and optional fields are not exposed.

The node declares exactly these (ROS types and descriptors in ``ros/params.py``); the replay
tool reads a node parameter file (:func:`load_parameter_file`) into the same flat dict; both
call :func:`engine_config_from_parameters`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
import typing
from typing import Any, Iterator, Literal, Mapping

from vggt4d_ros.mapping.mapper import MapperConfig
from vggt4d_ros.motion.pipeline import PipelineConfig
from vggt4d_ros.perception.config import PerceptionConfig
from vggt4d_ros.runtime.config import BackendConfig
from vggt4d_ros.runtime.config import EngineConfig
from vggt4d_ros.runtime.output_stage import OutputStageConfig
from vggt4d_ros.runtime.rig import RigConfig
from vggt4d_ros.runtime.scale.config import ScaleConfig
from vggt4d_ros.runtime.window import REPLAY_WINDOW
from vggt4d_ros.runtime.window import WindowConfig

#: Node names a parameter file section applies to besides the node's own name.
WILDCARDS = ('/**', '**')


@dataclass(frozen=True)
class ParameterSpec:
    """One flat parameter.

    Attributes:
        name: dotted name.
        default: default value (its type is the parameter's type).
        description: one or more sentences.
        choices: allowed values of a string parameter (empty: any).
        limits: inclusive (low, high) of a numeric parameter, or None.
        item_type: element type of an array parameter (bool, int, float or str); None for a
            scalar.
        length: items an array must have (None: any number).

    """

    name: str
    default: Any
    description: str
    choices: tuple[str, ...] = ()
    limits: tuple[float, float] | None = None
    item_type: type | None = None
    length: int | None = None

    def check(self, value: Any) -> str | None:
        """Why ``value`` is not allowed, or None when it is."""
        if self.item_type is not None:
            return self._check_array(value)
        kind = type(self.default)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not _is_a(value, kind):
            return f'{self.name} must be a {kind.__name__}, got {value!r}'
        if self.choices and value not in self.choices:
            return f'{self.name}={value!r} must be one of: {", ".join(self.choices)}'
        if self.limits is not None and not self.limits[0] <= value <= self.limits[1]:
            return f'{self.name}={value!r} must be in [{self.limits[0]}, {self.limits[1]}]'
        return None

    def _check_array(self, value: Any) -> str | None:
        kind = self.item_type
        items = 'numbers' if kind in (int, float) else f'{kind.__name__} values'
        if not isinstance(value, (list, tuple)) or not all(_is_a(v, kind) for v in value):
            return f'{self.name} must be a list of {items}, got {value!r}'
        if self.length is not None and len(value) != self.length:
            return f'{self.name} must be a list of {self.length} {items}'
        return None

    def plain(self, value: Any) -> Any:
        """``value`` (already checked) with the parameter's own type: ints of a float -> float."""
        if self.item_type is not None:
            return [self.item_type(v) for v in value]
        return float(value) if isinstance(self.default, float) else value


def _is_a(value: Any, kind: type) -> bool:
    """Whether ``value`` is of parameter type ``kind`` (an int is a float, a bool no int)."""
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool))


def _item_type(hint: Any, value: list) -> type | None:
    """Element type of an array field (``list[str]``, ``tuple[float, float]``), None if none."""
    kinds = {arg for arg in typing.get_args(hint) if arg is not Ellipsis} or {
        type(v) for v in value}
    kind = kinds.pop() if len(kinds) == 1 else None
    return kind if kind in (bool, int, float, str) else None


def _default(item: dataclasses.Field) -> Any:
    if item.default is not dataclasses.MISSING:
        return item.default
    if item.default_factory is not dataclasses.MISSING:
        return item.default_factory()
    return dataclasses.MISSING


def _choices(hint: Any) -> tuple[str, ...]:
    return tuple(typing.get_args(hint)) if typing.get_origin(hint) is Literal else ()


def field_specs(config_cls: type, prefix: str = '',
                exclude: tuple[str, ...] = ()) -> Iterator[ParameterSpec]:
    """List the parameters of a config dataclass, nested ones flattened (see the module docstring).

    Args:
        config_cls: a dataclass whose fields have defaults.
        prefix: prepended to every name (``'window.'``).
        exclude: dotted names (without ``prefix``) left out.

    """
    hints = typing.get_type_hints(config_cls)
    for item in dataclasses.fields(config_cls):
        value = _default(item)
        if value is dataclasses.MISSING or item.name in exclude:
            continue
        if dataclasses.is_dataclass(value):
            inner = tuple(name.split('.', 1)[1] for name in exclude
                          if name.startswith(item.name + '.'))
            yield from field_specs(type(value), f'{prefix}{item.name}.', inner)
            continue
        item_type = _item_type(hints[item.name], value) if isinstance(value, list) else None
        if not isinstance(value, (bool, int, float, str)) and item_type is None:
            continue
        meta = item.metadata
        if 'description' not in meta:
            raise TypeError(f'{config_cls.__name__}.{item.name} has no description in its '
                            "field metadata (dataclasses.field(metadata={'description': ...}))")
        limits = meta.get('range')
        length = None if item_type is None or meta.get('any_length') else len(value)
        yield ParameterSpec(prefix + item.name, value, meta['description'],
                            _choices(hints[item.name]) or tuple(meta.get('choices', ())),
                            tuple(limits) if limits is not None else None, item_type, length)


#: Engine parameter groups: (EngineConfig field, prefix, config class, excluded fields).
#: ``window.mode`` is the top-level ``mode`` (the node's queue policy follows it too); the
#: backend's and the rig's parameters are top-level names too.
ENGINE_GROUPS = (
    ('backend', '', BackendConfig, ()),
    ('window', 'window.', WindowConfig, ('mode',)),
    ('mapper', 'mapper.', MapperConfig, ()),
    ('pipeline', 'pipeline.', PipelineConfig, ()),
    ('scale', 'scale.', ScaleConfig, ()),
    ('perception', 'perception.', PerceptionConfig, ('output_from_world',)),
    ('rig', '', RigConfig, ()),
    ('output_stage', 'output_stage.', OutputStageConfig, ()),
)


def _mode_spec() -> ParameterSpec:
    return next(spec for spec in field_specs(WindowConfig) if spec.name == 'mode')


def engine_parameter_specs() -> list[ParameterSpec]:
    """Every engine parameter: ``mode``, then each group of :data:`ENGINE_GROUPS` in order."""
    specs = [_mode_spec()]
    for _, prefix, config_cls, exclude in ENGINE_GROUPS:
        specs += field_specs(config_cls, prefix, exclude)
    return specs


def build_config(config_cls: type, values: Mapping[str, Any]):
    """Instantiate ``config_cls`` from flat dotted ``values`` (missing ones keep defaults)."""
    kwargs: dict[str, Any] = {}
    for item in dataclasses.fields(config_cls):
        if item.name in values:
            kwargs[item.name] = values[item.name]
            continue
        nested = {key.split('.', 1)[1]: value for key, value in values.items()
                  if key.startswith(item.name + '.')}
        if nested:
            kwargs[item.name] = build_config(type(_default(item)), nested)
    return config_cls(**kwargs)


def engine_config_from_parameters(values: Mapping[str, Any]) -> EngineConfig:
    """Build the EngineConfig of a flat parameter dict (missing names keep their defaults).

    Names that are not engine parameters (the node's topics, frames, ...) are ignored.

    Raises:
        ValueError: a value has the wrong type, is not allowed or out of range, or a config
            rejects the combination (the message names the parameter).

    """
    def checked(spec: ParameterSpec) -> Any:
        value = values.get(spec.name, spec.default)
        reason = spec.check(value)
        if reason is not None:
            raise ValueError(f'parameter {reason}')
        return spec.plain(value)

    mode = checked(_mode_spec())
    built: dict[str, Any] = {}
    for field_name, prefix, config_cls, exclude in ENGINE_GROUPS:
        group = {spec.name[len(prefix):]: checked(spec)
                 for spec in field_specs(config_cls, prefix, exclude)}
        if config_cls is WindowConfig:
            group['mode'] = mode
        built[field_name] = build_config(config_cls, group)
    return EngineConfig(**built)


def replay_window_parameters(include_mode: bool = True) -> dict[str, Any]:
    """Return the replay window policy (:data:`runtime.window.REPLAY_WINDOW`) as parameters.

    ``include_mode=False`` leaves ``mode`` out: every frame a keyframe, in either mode.
    """
    return {name if name == 'mode' else f'window.{name}': value
            for name, value in REPLAY_WINDOW.items() if include_mode or name != 'mode'}


def flatten(tree: Mapping[str, Any], prefix: str = '') -> dict[str, Any]:
    """Nested YAML mapping -> flat dotted names."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f'{prefix}{key}.'))
        else:
            flat[prefix + str(key)] = value
    return flat


def load_parameter_file(path: str | Path, node_name: str = 'vggt4d') -> dict[str, Any]:
    """Flat parameters for ``node_name`` from a ROS 2 parameter file.

    The file maps node names (``/**`` for every node, ``vggt4d``, ``/ns/vggt4d``) to
    ``ros__parameters``; sections that apply are merged, wildcards first.

    Raises:
        ValueError: unreadable YAML, or no section for the node with ``ros__parameters``.

    """
    import yaml

    try:
        tree = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f'parameter file {path}: {error}') from error
    if not isinstance(tree, Mapping):
        raise ValueError(f'parameter file {path}: expected a mapping of node names')
    wildcard = [key for key in tree if key in WILDCARDS]
    named = [key for key in tree
             if key not in WILDCARDS and str(key).rstrip('/').rsplit('/', 1)[-1] == node_name]
    flat: dict[str, Any] = {}
    for key in wildcard + named:
        section = tree[key]
        if not isinstance(section, Mapping) or 'ros__parameters' not in section:
            raise ValueError(f'parameter file {path}: section {key!r} has no ros__parameters')
        flat.update(flatten(section['ros__parameters'] or {}))
    if not wildcard and not named:
        raise ValueError(f'parameter file {path} has no section for node {node_name!r} '
                         f'(sections: {", ".join(map(str, tree))})')
    return flat


def write_parameter_file(params: dict[str, Any], path: str | Path) -> Path:
    """Write flat parameters as a ROS 2 parameter file for every node (``/**``).

    Values keep their YAML types (``1.0e-06`` stays a double; a ``-p`` override of the same
    text would reach the node as a string).
    """
    import yaml

    tree: dict[str, Any] = {}
    for name, value in params.items():
        *groups, leaf = name.split('.')
        branch = tree
        for group in groups:
            branch = branch.setdefault(group, {})
        branch[leaf] = list(value) if isinstance(value, tuple) else value
    path = Path(path)
    path.write_text(yaml.safe_dump({'/**': {'ros__parameters': tree}}, sort_keys=False))
    return path


__all__ = ['build_config', 'ENGINE_GROUPS', 'engine_config_from_parameters',
           'engine_parameter_specs', 'field_specs', 'flatten', 'load_parameter_file',
           'ParameterSpec', 'replay_window_parameters', 'write_parameter_file']
