"""Checkers for the lessons' exercises: each runs the student's function on fresh inputs and compares it
with the library's own implementation, failing with a message that says what differs.

A checker prints one line when the exercise is right and raises ``AssertionError`` otherwise, so an
exercise cell goes green or red in the notebook (and in ``pytest --nbval``).
"""

from .filtering import check_box_filter, check_guided_filter
from .structure import check_adaptive_coloring, check_grouping, check_region_similarity
from .texture import check_color_shift, check_sample_color_shift, check_texture_batch
from .gans import GENERATOR_PARAMETERS, check_generator, check_lsgan_losses, check_toy_gan
from .perceptual import check_content_loss, check_structure_loss
from .training import check_adversarial_step, check_weighted_loss
from .inference import check_speedups, check_tiling
from .evaluation import check_frechet_distance
from .video import check_occlusion_mask

__all__ = [
    "GENERATOR_PARAMETERS",
    "check_adaptive_coloring",
    "check_adversarial_step",
    "check_box_filter",
    "check_color_shift",
    "check_content_loss",
    "check_frechet_distance",
    "check_generator",
    "check_grouping",
    "check_guided_filter",
    "check_lsgan_losses",
    "check_occlusion_mask",
    "check_region_similarity",
    "check_sample_color_shift",
    "check_speedups",
    "check_structure_loss",
    "check_texture_batch",
    "check_tiling",
    "check_toy_gan",
    "check_weighted_loss",
]
