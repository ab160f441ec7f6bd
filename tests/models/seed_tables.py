"""The yardstick: params (M) and FLOPs (G) from the PaddleClas model tables in shared/seeds/."""

SEED = {
    "DeiT_tiny_patch16_224": (5.68, 1.07),
    "DeiT_small_patch16_224": (21.97, 4.24),
    "DeiT_base_patch16_224": (86.42, 16.85),
    "DeiT_base_patch16_384": (86.42, 49.35),
    "DeiT_tiny_distilled_patch16_224": (5.87, 1.08),
    "DeiT_small_distilled_patch16_224": (22.36, 4.26),
    "DeiT_base_distilled_patch16_224": (87.18, 16.93),
    "DeiT_base_distilled_patch16_384": (87.18, 49.43),
    "ViT_small_patch16_224": (48.60, 9.41),
    "ViT_base_patch16_224": (86.42, 16.85),
    "ViT_base_patch16_384": (86.42, 49.35),
    "ViT_base_patch32_384": (88.19, 12.66),
    "ViT_large_patch16_224": (304.12, 59.65),
    "ViT_large_patch16_384": (304.12, 174.70),
    "ViT_large_patch32_384": (306.48, 44.24),
    "LeViT_128S": (7.8, 0.305),
    "LeViT_128": (9.2, 0.406),
    "LeViT_192": (11, 0.658),
    "LeViT_256": (19, 1.120),
    "LeViT_384": (39, 2.353),
}
