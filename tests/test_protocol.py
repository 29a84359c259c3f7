"""Every registered model implements the interfaces the trainer, evaluation and wrappers rely on."""

import pytest
import torch

from sqair_world.model.protocol import ObjectTracker, SequenceModel, check_conforms, protocol_mismatches
from sqair_world.model.registry import MODEL_NAMES, build_model

SMALL = dict(n_hidden=16)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_registered_models_are_sequence_models(name):
    model = build_model(name, **SMALL)
    assert isinstance(model, SequenceModel) and protocol_mismatches(model, SequenceModel) == []
    assert model.cfg.k_particles >= 1  # the one K


def test_slot_models_are_trackers_and_vrnn_is_not():
    assert protocol_mismatches(build_model("mlp-sqair", **SMALL), ObjectTracker) == []
    assert protocol_mismatches(build_model("mlp-air", **SMALL), ObjectTracker) == []
    with pytest.raises(TypeError, match="missing method online_step"):
        check_conforms(build_model("mlp-vrnn", **SMALL), ObjectTracker)


def test_a_model_with_a_wrong_signature_is_refused():
    class Broken(torch.nn.Module):
        cfg = None

        def forward(self, frames):  # not (x, k, sample)
            return frames

        def set_background(self, image, trainable=True):
            pass

        def num_parameters(self):
            return 0

    with pytest.raises(TypeError, match=r"forward\(frames\) does not take the parameters \(x, k, sample\)"):
        check_conforms(Broken(), SequenceModel)


def test_vrnn_background_can_be_frozen():
    model = build_model("mlp-vrnn", **SMALL)
    model.set_background(torch.full(model.cfg.image_shape, 0.5), trainable=False)
    assert not model.mean_image.requires_grad and float(model.mean_image.mean()) == 0.5


def test_old_checkpoint_config_with_a_removed_field_loads_and_other_values_are_refused():
    from sqair_world.model.config import SQAIRConfig, config_from_dict

    data = SQAIRConfig().to_dict()
    assert config_from_dict(SQAIRConfig, {**data, "thread_where_prior_state": False}) == SQAIRConfig()
    with pytest.raises(ValueError, match="thread_where_prior_state=True is no longer supported"):
        config_from_dict(SQAIRConfig, {**data, "thread_where_prior_state": True})
