"""Process-group set-up for `torchrun` (gloo on CPU, nccl on GPU; a single process needs none of it), and
FSDP2 sharding of an objective's model for `train.parallel: fsdp`."""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def setup() -> Dist:
    """Read torchrun's environment; join the process group when there is more than one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(rank=rank, world=world, local_rank=local_rank, device=device)


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(value: torch.Tensor, info: Dist) -> torch.Tensor:
    if info.enabled:
        value = value.to(info.device)
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def broadcast_int(value: int, info: Dist) -> int:
    """Rank 0's `value` for everyone."""
    if not info.enabled:
        return value
    tensor = torch.tensor([value], dtype=torch.int64, device=info.device)
    dist.broadcast(tensor, src=0)
    return int(tensor.item())


def broadcast_flag(flag: bool, info: Dist) -> bool:
    """Rank 0's decision for everyone (a wall-clock budget must stop all processes at the same step)."""
    if not info.enabled:
        return flag
    tensor = torch.tensor([int(flag)], device=info.device)
    dist.broadcast(tensor, src=0)
    return bool(tensor.item())


def barrier(info: Dist) -> None:
    if info.enabled:
        dist.barrier()


def all_reduce_max(value: torch.Tensor, info: Dist) -> torch.Tensor:
    if info.enabled:
        value = value.to(info.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return value


# ----------------------------------------------------------------------------------------------- FSDP


def layer_stack(model: nn.Module) -> nn.ModuleList | None:
    """The model's stack of transformer layers: of its ModuleLists of blocks of one class, the one holding the
    most parameters (BertEncoder.layer, ModernBertModel.layers, GPT2Model.h); None if it has none."""
    best, most = None, 0
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) and len({type(block) for block in module}) == 1:
            count = sum(p.numel() for p in module.parameters())
            if count > most:
                best, most = module, count
    return best


class ShardedRoot(nn.Module):
    """The root FSDP unit around an objective: its forward gathers every parameter outside the sharded
    layers before the objective's forward reads them. The objective, not its Hugging Face model, is what the
    loop calls, and the masked-LM objective reaches the head and the last layer's parts directly
    (engine/accel/sparse_mlm.py), so hooks on the model's own forward would never run."""

    def __init__(self, objective: nn.Module):
        super().__init__()
        self.objective = objective

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.objective(batch)


def shard(objective: nn.Module, info: Dist) -> nn.Module:
    """Swap `objective.model` for a copy sharded with FSDP2 over every process; returns the root unit to call.

    Each transformer layer but the last is its own unit (gathered for its forward and backward, then freed);
    the last layer, the embeddings and the heads form the root unit, gathered for the whole step: the sparse
    masked-LM path calls the last layer's parts outside the layer's forward. The original model is left as
    it was, on the host, where the loop loads the trained weights into it at the end (`full_state_dict`).

    Mixed precision stays the loop's autocast, not FSDP's MixedPrecisionPolicy: parameters, gradients and
    their reduction stay fp32 with autocast computing in bf16, which is what DDP and a single process compute."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(info.device.type, (info.world,))
    model = copy.deepcopy(objective.model)
    layers = layer_stack(model)
    for layer in list(layers)[:-1] if layers is not None else []:
        fully_shard(layer, mesh=mesh)
    objective.model = model
    return fully_shard(ShardedRoot(objective), mesh=mesh)


def fsdp_units(root: nn.Module) -> list[nn.Module]:
    from torch.distributed.fsdp import FSDPModule

    return [module for module in root.modules() if isinstance(module, FSDPModule)]


def reshard(root: nn.Module) -> None:
    """Free every unit's gathered parameters, so the model's state dict is its shards. The root unit keeps its
    parameters gathered after a forward, and an evaluation's forward has no backward that would free them."""
    for unit in fsdp_units(root):
        unit.reshard()


def set_gradient_sync(root: nn.Module, sync: bool) -> None:
    """FSDP's no_sync: without sync, backward accumulates unsharded gradients and skips the reduce-scatter."""
    root.set_requires_gradient_sync(sync)


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The sharded `model`'s weights (resharded first: `reshard`) as full tensors on the host, in every
    process, gathered one tensor at a time (never the whole model on the device)."""
    from torch.distributed.tensor import DTensor

    return {name: (value.full_tensor() if isinstance(value, DTensor) else value).detach().to("cpu", copy=True)
            for name, value in model.state_dict().items()}


def full_state_dict_on_main(model: nn.Module) -> dict[str, torch.Tensor]:
    """The sharded `model`'s weights as full tensors on rank 0's host; an empty dict elsewhere."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_full_state_dict_from_main(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load rank 0's full `state` into the sharded `model` (each process keeps its shards)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
