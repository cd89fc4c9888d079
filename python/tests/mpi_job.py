"""Run by test_mpi.py under `mpirun -n 2`: one scenario per invocation, each rank writing what
it saw to <out>/rank<R>.npz for the test to compare."""

import sys

import numpy as np

import paradiff

scenario, model, out = sys.argv[1:4]
state = paradiff.PartialState()
KW = dict(height=32, width=48, num_inference_steps=2, max_sequence_length=16)
PROMPTS = ["a red circle", "a blue square", "a green triangle"]


def save(**arrays):
    np.savez(f"{out}/rank{state.process_index}.npz", **arrays)


if scenario == "ulysses":
    pipe = paradiff.FluxPipeline.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    pipe.transformer.enable_parallelism(config=paradiff.ContextParallelConfig(ulysses_degree=2))
    image = pipe(PROMPTS[0], generator=paradiff.Generator().manual_seed(0), **KW).images[0]
    latents = pipe(PROMPTS[0], generator=paradiff.Generator().manual_seed(0), output_type="latent", **KW).images
    save(image=np.asarray(image), latents=latents, bytes_sent=pipe.last_stats["bytes_sent"])

elif scenario == "split_prompts":
    # accelerate's pattern: every process its own pipeline and its share of the prompts.
    pipe = paradiff.FluxPipeline.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    with state.split_between_processes(PROMPTS) as mine:
        latents = pipe(mine, generator=paradiff.Generator().manual_seed(4), output_type="latent", **KW).images
    save(latents=latents, count=len(mine))

elif scenario == "data_parallel":
    # The engine's replicas share one call's prompts; every rank receives every image.
    pipe = paradiff.FluxPipeline.from_pretrained(model, parallel_config=paradiff.ParallelConfig())
    pipe.set_progress_bar_config(disable=True)
    latents = pipe(PROMPTS, generator=paradiff.Generator().manual_seed(4), output_type="latent", **KW).images
    s = pipe.last_stats
    save(latents=latents, images_here=s["images_here"], replicas=s["replicas"], bytes_sent=s["bytes_sent"])

elif scenario == "errors_then_work":
    # The same bad input on every rank: an exception everywhere, and the job goes on.
    pipe = paradiff.FluxPipeline.from_pretrained(model)
    pipe.transformer.enable_parallelism(config=paradiff.ContextParallelConfig(ring_degree=2))
    pipe.set_progress_bar_config(disable=True)
    try:
        pipe(PROMPTS[0], num_inference_steps=0)
        raise SystemExit("no error for num_inference_steps=0")
    except paradiff.ParadiffError as e:
        message = str(e)
    latents = pipe(PROMPTS[0], generator=paradiff.Generator().manual_seed(0), output_type="latent", **KW).images
    save(latents=latents, message=message)

elif scenario == "placed":
    # diffusers' device_map="balanced" (components dealt to the two processes) and the
    # transformer's blocks over them: every process opens and calls the pipeline alike.
    pipe = paradiff.FluxPipeline.from_pretrained(model, device_map="balanced")
    pipe.set_progress_bar_config(disable=True)
    balanced = pipe(PROMPTS[0], generator=paradiff.Generator().manual_seed(0), output_type="latent", **KW).images
    owners = sorted(set(pipe.hf_device_map.values()))
    pipe = paradiff.FluxPipeline.from_pretrained(model, transformer_device_map="balanced")
    pipe.set_progress_bar_config(disable=True)
    blocks = pipe(PROMPTS[0], generator=paradiff.Generator().manual_seed(0), output_type="latent", **KW).images
    block_owners = sorted(set(pipe.transformer.hf_device_map.values()))
    save(balanced=balanced, blocks=blocks, owners=owners, block_owners=block_owners)

elif scenario == "rank_fails":
    # Rank 1's script fails; rank 0 waits for it at a barrier. The job must end, not hang.
    if state.process_index == 1:
        raise RuntimeError("rank one's script broke")
    state.wait_for_everyone()
    save(reached=1)

else:
    raise SystemExit(f"unknown scenario {scenario}")
