"""The text tower of an open_clip model, taking token *embeddings* instead of token ids.

open_clip's ``encode_text`` starts from token ids. Learned prompts (CoOp) replace some token embeddings
with learnable vectors, so the tower is split at the embedding lookup: :meth:`TextTower.embed` is the
frozen token embedding, :meth:`TextTower.forward` runs everything after it (positional embedding,
causal transformer, ``ln_final``, EOT pooling, ``text_projection``) exactly as ``CLIP.encode_text`` /
``TextTransformer.forward`` do.
"""
from typing import Optional

import torch
import torch.nn as nn
from open_clip.transformer import TextTransformer, text_global_pool

__all__ = ['TextTower']


class TextTower(nn.Module):
    """Text tower taken out of an open_clip ``CLIP`` or ``CustomTextCLIP`` model.

    The tower keeps references to the model's own modules and parameters (no copy); the caller may
    drop the rest of the model (the vision tower) afterwards.

    Args:
        clip_model (nn.Module): An open_clip ``CLIP`` (text modules as attributes) or
            ``CustomTextCLIP`` whose ``text`` is an open_clip ``TextTransformer``. Hugging Face text
            towers and CoCa-style towers (appended CLS embedding) are not supported.
    """

    def __init__(self, clip_model: nn.Module):
        super().__init__()
        if isinstance(getattr(clip_model, 'text', None), TextTransformer):
            src = clip_model.text  # CustomTextCLIP layout
            pool_type, eos_id = src.pool_type, src.eos_id
            attn_mask = src.attn_mask
            self.pad_id = src.pad_id
            self.use_pad_mask = bool(getattr(src, 'use_pad_mask', False))
            if src.cls_emb is not None:
                raise ValueError(
                    'CLIPPromptTextEncoder: text towers with an appended CLS embedding (CoCa) '
                    'are not supported; use a CLIP model.')
        elif hasattr(clip_model, 'token_embedding') and hasattr(clip_model, 'transformer'):
            src = clip_model  # CLIP layout
            pool_type = clip_model.text_pool_type
            eos_id = getattr(clip_model, 'text_eos_id', None)
            attn_mask = clip_model.attn_mask
            self.pad_id, self.use_pad_mask = 0, False
        else:
            raise TypeError(f'CLIPPromptTextEncoder: cannot find an open_clip TextTransformer in '
                            f'{type(clip_model).__name__} (Hugging Face text towers are not supported).')

        if pool_type not in ('argmax', 'eos', 'first', 'last'):
            raise ValueError(
                f'CLIPPromptTextEncoder: text pool_type={pool_type!r} gives no single text feature; '
                "use a model whose text tower pools ('argmax', 'eos', 'first' or 'last').")
        self.token_embedding = src.token_embedding
        self.positional_embedding = src.positional_embedding
        self.transformer = src.transformer
        self.ln_final = src.ln_final
        self.text_projection = src.text_projection
        self.pool_type = pool_type
        self.eos_id = eos_id
        self.heads = getattr(src, 'heads', None)  # only needed for the padding mask
        self.register_buffer('attn_mask', attn_mask, persistent=False)

    @property
    def width(self) -> int:
        """Token embedding width (C)."""
        return self.token_embedding.weight.shape[1]

    @property
    def context_length(self) -> int:
        """Maximum number of tokens of a prompt."""
        return self.positional_embedding.shape[0]

    @property
    def embed_dim(self) -> int:
        """Output (joint image-text) embedding dim (D)."""
        proj = self.text_projection
        if proj is None:
            return self.width
        return proj.out_features if isinstance(proj, nn.Linear) else proj.shape[1]

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token ids (N, L) -> token embeddings (N, L, C)."""
        return self.token_embedding(tokens)

    def pool_index(self, tokens: torch.Tensor) -> torch.Tensor:
        """Position of the pooled token of every sequence (N,), as ``text_global_pool`` picks it."""
        if self.pool_type == 'argmax':
            return tokens.argmax(dim=-1)
        if self.pool_type == 'eos':
            return (tokens == self.eos_id).int().argmax(dim=-1)
        if self.pool_type == 'first':
            return torch.zeros(tokens.shape[0], dtype=torch.long, device=tokens.device)
        return torch.full((tokens.shape[0], ),
                          tokens.shape[1] - 1,
                          dtype=torch.long,
                          device=tokens.device)

    def forward(self, embeds: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Encode prompts given as token embeddings.

        With a causal mask and EOT pooling nothing after the EOT token can reach the pooled feature,
        so the sequences are cut right after the last EOT of the batch (same result, far fewer tokens
        than the 77 of the context).

        Args:
            embeds (Tensor): Token embeddings, (N, L, C).
            tokens (Tensor): The token ids the embeddings stand for (placeholders at learned
                positions), (N, L); used for EOT pooling.

        Returns:
            Tensor: Text features (N, D), not normalised.
        """
        length = embeds.shape[1]
        if self.attn_mask is not None and self.pool_type in ('argmax', 'eos', 'first'):
            length = int(self.pool_index(tokens).max()) + 1
        embeds, tokens = embeds[:, :length], tokens[:, :length]

        cast_dtype = self.transformer.get_cast_dtype()
        x = embeds.to(cast_dtype) + self.positional_embedding[:length].to(cast_dtype)  # (N, L, C)
        attn_mask: Optional[torch.Tensor] = None
        if self.attn_mask is not None:
            attn_mask = self.attn_mask[:length, :length]
        if self.use_pad_mask:
            valid = tokens != self.pad_id  # (N, L)
            pad = torch.zeros(valid.shape[0], length, length, dtype=x.dtype, device=x.device)
            pad.masked_fill_(~valid[:, None, :], float('-inf'))
            pad = pad.repeat_interleave(self.heads, 0)  # (N * heads, L, L)
            attn_mask = pad if attn_mask is None else attn_mask[None] + pad
        x = self.transformer(x, attn_mask=attn_mask)  # (N, L, C)
        x = self.ln_final(x)
        x = text_global_pool(x, tokens, self.pool_type, eos_token_id=self.eos_id)  # (N, C)
        if self.text_projection is not None:
            if isinstance(self.text_projection, nn.Linear):
                x = self.text_projection(x)
            else:
                x = x @ self.text_projection  # (N, D)
        return x
