"""Architecture hyper-parameters of the Llama 3.2 Vision sizes we build.

One record per size feeds the torchtune builders, the Hugging Face ``config.json`` writer and
the checkpoint converters, so the tiny model and the 11B model share one code path.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["VisionArch", "TINY", "LLAMA_11B"]


@dataclass(frozen=True)
class VisionArch:
    """Hyper-parameters of one Llama 3.2 Vision size (CLIP encoder + fused Llama decoder).

    Attributes mirror the keyword arguments of torchtune's ``llama3_2_vision_encoder`` and
    ``llama3_2_vision_decoder`` component builders.
    """

    # Vision encoder
    patch_size: int
    tile_size: int
    max_num_tiles: int
    clip_embed_dim: int
    clip_num_layers: int
    clip_num_heads: int
    clip_hidden_states: tuple[int, ...]
    num_layers_projection: int
    # Decoder
    vocab_size: int
    num_fusion_tokens: int
    num_layers: int
    fusion_interval: int
    num_heads: int
    num_kv_heads: int
    embed_dim: int
    intermediate_dim: int
    max_seq_len: int
    max_num_images: int
    rope_base: int = 500_000
    norm_eps: float = 1e-5

    @property
    def tokens_per_tile(self) -> int:
        """Patch tokens plus the CLS token of one tile."""
        return (self.tile_size // self.patch_size) ** 2 + 1

    @property
    def encoder_max_seq_len(self) -> int:
        """Cross-attention memory length: every tile of every image of one sample."""
        return self.max_num_images * self.max_num_tiles * self.tokens_per_tile

    @property
    def head_dim(self) -> int:
        """Decoder attention head size."""
        return self.embed_dim // self.num_heads

    @property
    def fusion_layers(self) -> list[int]:
        """0-based decoder layers (torchtune numbering) that carry a cross-attention layer."""
        return [i - 1 for i in range(1, self.num_layers + 1) if i % self.fusion_interval == 0]

    @property
    def hf_cross_attention_layers(self) -> list[int]:
        """Hugging Face numbering: each cross-attention layer is its own layer before the one it fuses."""
        return [layer + k for k, layer in enumerate(self.fusion_layers)]

    def encoder_kwargs(self, tile_size: int | None = None) -> dict:
        """Keyword arguments of the ``llama3_2_vision_encoder`` component builders.

        Args:
            tile_size (int | None): tile size in pixels; default :attr:`tile_size`.

        Returns:
            dict: ``patch_size`` ... ``in_channels``.
        """
        return dict(
            patch_size=self.patch_size,
            num_heads=self.clip_num_heads,
            clip_embed_dim=self.clip_embed_dim,
            clip_num_layers=self.clip_num_layers,
            clip_hidden_states=list(self.clip_hidden_states),
            num_layers_projection=self.num_layers_projection,
            decoder_embed_dim=self.embed_dim,
            tile_size=tile_size or self.tile_size,
            max_num_tiles=self.max_num_tiles,
            in_channels=3,
        )

    def decoder_kwargs(self) -> dict:
        """Keyword arguments of the ``llama3_2_vision_decoder`` component builders.

        Returns:
            dict: ``vocab_size`` ... ``intermediate_dim``.
        """
        return dict(
            vocab_size=self.vocab_size,
            num_layers=self.num_layers,
            fusion_interval=self.fusion_interval,
            num_special_tokens=self.num_fusion_tokens,
            num_heads=self.num_heads,
            num_kv_heads=self.num_kv_heads,
            embed_dim=self.embed_dim,
            max_seq_len=self.max_seq_len,
            encoder_max_seq_len=self.encoder_max_seq_len,
            rope_base=self.rope_base,
            intermediate_dim=self.intermediate_dim,
        )


#: The embedded tiny default: same topology as 11B (CLIP + 2 taps + global projection layers, GQA
#: decoder with 2 fusion layers), small enough to train on 2 CPU cores in seconds.
TINY = VisionArch(
    patch_size=14,
    tile_size=56,
    max_num_tiles=4,
    clip_embed_dim=128,
    clip_num_layers=2,
    clip_num_heads=4,
    clip_hidden_states=(0, 1),
    num_layers_projection=1,
    vocab_size=512,
    num_fusion_tokens=8,
    num_layers=4,
    fusion_interval=2,
    num_heads=8,
    num_kv_heads=2,
    embed_dim=256,
    intermediate_dim=512,
    max_seq_len=8192,
    max_num_images=8,
)

#: Llama 3.2 11B Vision (Instruct), as in torchtune's ``llama3_2_vision_11b``.
LLAMA_11B = VisionArch(
    patch_size=14,
    tile_size=560,
    max_num_tiles=4,
    clip_embed_dim=1280,
    clip_num_layers=32,
    clip_num_heads=16,
    clip_hidden_states=(3, 7, 15, 23, 30),
    num_layers_projection=8,
    vocab_size=128_256,
    num_fusion_tokens=8,
    num_layers=32,
    fusion_interval=4,
    num_heads=32,
    num_kv_heads=8,
    embed_dim=4096,
    intermediate_dim=14_336,
    max_seq_len=131_072,
    max_num_images=20,
)
