"""Hand-written forward passes of neuraloperator's model families, built from the models' own modules.

Each function re-runs one family's forward step by step (as neuraloperator 2.x writes it) and offers every
intermediate field to a :class:`Tap`, which records it in the hook convention ``(B, C, *grid)`` and can
replace it (by zeros or by a given tensor) before the forward goes on. The family tests compare
``HookedOperator`` caches and replacements against these recomputations.
"""

from __future__ import annotations

import torch
from neuralop.layers.resample import resample


def quiet(build, **kwargs):
    """Build a model without neuraloperator's prints and warnings, in eval mode."""
    import contextlib
    import io
    import warnings

    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build(**kwargs).eval()


def tiny_gino(n_layers: int = 2):
    """A small 2-D GINO (4 hidden channels, 4x4 modes) the point-cloud tests share."""
    from neuralop import models

    return quiet(
        models.GINO,
        in_channels=1,
        out_channels=1,
        gno_coord_dim=2,
        fno_n_modes=(4, 4),
        fno_hidden_channels=4,
        fno_n_layers=n_layers,
        in_gno_radius=0.3,
        out_gno_radius=0.3,
        gno_use_open3d=False,
        gno_use_torch_scatter=False,
        in_gno_channel_mlp_hidden_layers=[8],
        out_gno_channel_mlp_hidden_layers=[8],
        gno_embed_channels=4,
        fno_in_channels=3,
        fno_lifting_channel_ratio=2,
        projection_channel_ratio=2,
    )


class Tap:
    """Records named fields and optionally zeroes one of them (its interior, when padded)."""

    def __init__(self, zero: str | None = None) -> None:
        self.fields: dict[str, torch.Tensor] = {}
        self.zero = zero
        self.padded_grid: tuple[int, ...] | None = None  # padded input grid of the current operator
        self.pad: list[int] = []
        self.grid: tuple[int, ...] = ()
        self.batch = 1

    def crop(self, t: torch.Tensor) -> tuple:
        """Interior of a padded field whose grid is the padded input grid scaled by a whole factor."""
        out = []
        for s, p, a, r in zip(t.shape[2:], self.padded_grid, self.pad, self.grid):
            assert (a * s) % p == 0 and ((a + r) * s) % p == 0, "test sizes must give exact crops"
            out.append(slice(a * s // p, (a + r) * s // p))
        return (Ellipsis, *out)

    def __call__(
        self, name: str, t: torch.Tensor, padded: bool = False, layout: str = "field"
    ) -> torch.Tensor:
        if layout == "tokens":
            view = t.reshape(self.batch, -1, *t.shape[2:])
        elif layout == "channels_last":
            view = (t.unsqueeze(0) if t.dim() == 2 else t).transpose(-1, -2)
        else:
            view = t
        index = self.crop(view) if padded and self.padded_grid is not None else (Ellipsis,)
        self.fields[name] = view[index].detach().clone()
        if name != self.zero:
            return t
        view = view.clone()
        view[index] = 0
        if layout == "tokens":
            return view.reshape(t.shape)
        if layout == "channels_last":
            back = view.transpose(-1, -2)
            return back.squeeze(0) if t.dim() == 2 else back
        return view


def fno_block(blocks, x: torch.Tensor, i: int, tap: Tap, pre: str, output_shape=None, padded: bool = False):
    """``FNOBlocks.forward_with_postactivation`` for layer ``i``, tapping its parts."""
    assert not blocks.preactivation and blocks.stabilizer is None
    if blocks.fno_skips is not None:
        skip = tap(f"{pre}.skip.hook_out", blocks.fno_skips[i](x), padded)
        skip = blocks.convs[i].transform(skip, output_shape=output_shape)
    if blocks.use_channel_mlp and blocks.channel_mlp_skips is not None:
        mlp_skip = blocks.convs[i].transform(blocks.channel_mlp_skips[i](x), output_shape=output_shape)
    y = tap(f"{pre}.spectral.hook_out", blocks.convs[i](x, output_shape=output_shape), padded)
    if blocks.norm is not None:
        y = blocks.norm[blocks.n_norms * i](y)
    if blocks.fno_skips is not None:
        y = y + skip
    if i < blocks.n_layers - 1:
        y = blocks.non_linearity(y)
    if blocks.use_channel_mlp:
        m = tap(f"{pre}.mlp.hook_out", blocks.channel_mlp[i](y), padded)
        y = m + mlp_skip if blocks.channel_mlp_skips is not None else m
    if blocks.norm is not None:
        y = blocks.norm[blocks.n_norms * i + 1](y)
    if i < blocks.n_layers - 1:
        y = blocks.non_linearity(y)
    return tap(f"{pre}.hook_out", y, padded)


def _start_padding(tap: Tap, padding, x_unpadded: torch.Tensor, x_padded: torch.Tensor) -> None:
    tap.grid = tuple(x_unpadded.shape[2:])
    tap.padded_grid = tuple(x_padded.shape[2:])
    tap.pad = [(p - r) // 2 for p, r in zip(tap.padded_grid, tap.grid)]


def fno(model, x: torch.Tensor, tap: Tap, prefix: str = "") -> torch.Tensor:
    """``FNO.forward``."""
    p = prefix
    grid_in = x
    if model.positional_embedding is not None:
        x = tap(p + "embedding.hook_out", model.positional_embedding(x))
    x = tap(p + "lifting.hook_out", model.lifting(x))
    padded = model.domain_padding is not None
    if padded:
        x_pad = model.domain_padding.pad(x)
        _start_padding(tap, model.domain_padding, grid_in, x_pad)
        x = x_pad
    for i in range(model.n_layers):
        x = fno_block(model.fno_blocks, x, i, tap, f"{p}blocks.{i}", padded=padded)
    tap.padded_grid = None
    if padded:
        x = model.domain_padding.unpad(x)
    x = tap(p + "projection.hook_in", x)
    return tap(p + "hook_out", model.projection(x))


def uno(model, x: torch.Tensor, tap: Tap) -> torch.Tensor:
    """``UNO.forward``: per-layer FNOBlocks on their own grids, horizontal skips resampled and concatenated."""
    grid_in = x
    if model.positional_embedding is not None:
        x = tap("embedding.hook_out", model.positional_embedding(x))
    x = tap("lifting.hook_out", model.lifting(x))
    padded = model.domain_padding is not None
    if padded:
        x_pad = model.domain_padding.pad(x)
        _start_padding(tap, model.domain_padding, grid_in, x_pad)
        x = x_pad
    output_shape = [
        int(round(i * j)) for i, j in zip(x.shape[-model.n_dim :], model.end_to_end_scaling_factor)
    ]
    skips: dict[int, torch.Tensor] = {}
    for i in range(model.n_layers):
        if i in model.horizontal_skips_map:
            skip_val = skips[model.horizontal_skips_map[i]]
            factors = [m / n for m, n in zip(x.shape, skip_val.shape)][-model.n_dim :]
            x = torch.cat([x, resample(skip_val, factors, list(range(-model.n_dim, 0)))], dim=1)
        x = tap(f"blocks.{i}.hook_in", x, padded)
        out_shape = output_shape if i == model.n_layers - 1 else None
        x = fno_block(model.fno_blocks[i], x, 0, tap, f"blocks.{i}", output_shape=out_shape, padded=padded)
        if i in model.horizontal_skips_map.values():
            skips[i] = tap(f"horizontal_skips.{i}.hook_out", model.horizontal_skips[str(i)](x), padded)
    tap.padded_grid = None
    if padded:
        x = model.domain_padding.unpad(x)
    x = tap("projection.hook_in", x)
    return tap("hook_out", model.projection(x))


def uqno(model, x: torch.Tensor, tap: Tap) -> tuple[torch.Tensor, torch.Tensor]:
    """``UQNO.forward``: the base model (without gradients) and the residual model, both FNOs here."""
    with torch.no_grad():
        solution = fno(model.base_model, x, tap, "base.")
    return solution, fno(model.residual_model, x, tap, "residual.")


def fnogno(model, in_p: torch.Tensor, out_p: torch.Tensor, f: torch.Tensor, tap: Tap) -> torch.Tensor:
    """``FNOGNO.forward`` (unbatched GNO): FNO on the latent grid, GNO to the output points, projection."""
    assert not model.gno_batched
    x = torch.cat((f, in_p), dim=-1).permute(-1, *model.in_coord_dim_forward_order).unsqueeze(0)
    x = tap("lifting.hook_out", model.lifting(x))
    for i in range(model.fno_blocks.n_layers):
        x = fno_block(model.fno_blocks, x, i, tap, f"blocks.{i}")
    latent = x.squeeze(0).permute(*model.in_coord_dim_reverse_order, 0).reshape(-1, model.fno_hidden_channels)
    out = model.gno(y=in_p.reshape(-1, in_p.shape[-1]), x=out_p, f_y=latent)
    out = tap("gno.hook_out", out, layout="channels_last")
    if out.ndim == 2:
        out = out.unsqueeze(0)
    out = tap("projection.hook_in", out.permute(0, 2, 1))
    out = model.projection(out).squeeze(0).permute(1, 0)
    return tap("hook_out", out, layout="channels_last")


def gino(model, input_geom, latent_queries, output_queries, x, tap: Tap) -> torch.Tensor:
    """``GINO.forward`` (one output query tensor, no latent features): GNO in, FNO, GNO out, projection."""
    batch = 1 if x is None else x.shape[0]
    geom, lq, oq = input_geom.squeeze(0), latent_queries.squeeze(0), output_queries.squeeze(0)
    in_p = model.gno_in(y=geom, x=lq.view((-1, lq.shape[-1])), f_y=x)
    in_p = tap("gno_in.hook_out", in_p, layout="channels_last")
    in_p = in_p.view((batch, *lq.shape[:-1], -1))
    h = in_p.permute(0, in_p.dim() - 1, *range(1, in_p.dim() - 1))
    h = tap("lifting.hook_out", model.lifting(h))
    for i in range(model.fno_blocks.n_layers):
        h = fno_block(model.fno_blocks, h, i, tap, f"blocks.{i}")
    latent = h.permute(0, *model.in_coord_dim_reverse_order, 1).reshape(
        h.shape[0], -1, model.fno_hidden_channels
    )
    if model.out_gno_tanh in ["latent_embed", "both"]:
        latent = torch.tanh(latent)
    out = model.gno_out(y=lq.reshape((-1, lq.shape[-1])), x=oq, f_y=latent)
    out = tap("gno_out.hook_out", out, layout="channels_last")
    out = tap("projection.hook_in", out.permute(0, 2, 1))
    return tap("hook_out", model.projection(out).permute(0, 2, 1), layout="channels_last")


def codano(model, x: torch.Tensor, tap: Tap, static_channel=None, input_variable_ids=None) -> torch.Tensor:
    """``CODANO.forward``: static channels and positional encodings before the lifting, the class token
    after it, horizontal skips (resampled, concatenated per token, projected) before their layer, its CODA
    layers in the permutation-equivariant form (``CODALayer._forward_equivariant``)."""
    batch, n_var, *spatial = x.shape
    tap.batch = batch
    grid_in = x
    d = model.hidden_variable_codimension
    x = model._extend_variables(x, static_channel, input_variable_ids)
    x = x.reshape(batch * n_var, model.extended_variable_codimemsion, *spatial)
    x = tap("lifting.hook_out", model.lifting(x), layout="tokens")
    x = x.reshape(batch, n_var * d, *spatial)
    if model.enable_cls_token:
        x = torch.cat([model._get_cls_token(x), x], dim=1)
        n_var += 1
    padded = model.domain_padding is not None
    if padded:
        x_pad = model.domain_padding.pad(x)
        _start_padding(tap, model.domain_padding, grid_in, x_pad)
        x = x_pad
    end_shape = [int(round(i * j)) for i, j in zip(x.shape[-model.n_dim :], model.end_to_end_scaling)]
    skips_map = model.horizontal_skips_map or {}
    skips: dict[int, torch.Tensor] = {}
    for i, layer in enumerate(model.attention_layers):
        assert layer.permutation_eq
        if i in skips_map:
            skip_val = skips[skips_map[i]]
            factors = [m / n for m, n in zip(x.shape, skip_val.shape)][-model.n_dim :]
            grid = x.shape[-model.n_dim :]
            t = resample(skip_val, factors, list(range(-model.n_dim, 0)), output_shape=grid)
            joined = torch.cat([x.reshape(batch * n_var, d, *grid), t.reshape(batch * n_var, d, *grid)], 1)
            x = model.skip_map_module[str(i)](joined).reshape(batch, n_var * d, *grid)
        x = tap(f"blocks.{i}.hook_in", x, padded)
        grid = x.shape[-model.n_dim :]
        output_shape = end_shape if i == model.n_layers - 1 else None
        if layer.resolution_scaling_factor is not None and output_shape is None:
            output_shape = [int(a * b) for a, b in zip(grid, layer.resolution_scaling_factor)]
        t = x.size(1) // layer.token_codimension
        tokens = x.view(batch * t, layer.token_codimension, *grid)
        att = layer.compute_attention(layer.norm1(tokens), batch)
        if layer.multi_head_proj is not None:
            att = layer.multi_head_proj(att)
        att = tap(
            f"blocks.{i}.attention.hook_out", layer.attention_normalizer(att + tokens), padded, "tokens"
        )
        out = layer.mixer_in_normalizer(att)
        for j in range(layer.mixer.n_layers):
            out = layer.mixer(out, index=j, output_shape=grid)
        out = tap(f"blocks.{i}.mixer.hook_out", layer.mixer_out_normalizer(out), padded, "tokens") + att
        out = out.view(batch, -1, *grid)
        if output_shape is not None:
            scale = [b / a for a, b in zip(grid, output_shape)]
            out = resample(out, res_scale=scale, axis=list(range(-model.n_dim, 0)), output_shape=output_shape)
        x = tap(f"blocks.{i}.hook_out", out, padded)
        if i in skips_map.values():
            skips[i] = x.clone()
    tap.padded_grid = None
    if padded:
        x = model.domain_padding.unpad(x)
    x = x.reshape(batch * n_var, d, *x.shape[-model.n_dim :])
    x = tap("projection.hook_in", x, layout="tokens")
    x = model.projection(x)
    x = x.reshape(batch, n_var * model.output_variable_codimension, *x.shape[-model.n_dim :])
    if model.enable_cls_token:
        x = x[:, model.output_variable_codimension :, ...]
    return tap("hook_out", x)
