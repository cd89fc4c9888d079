# Each process picks its prompt by its rank (the guide's torchrun example; mpirun starts the
# processes, no process group to set up).  mpirun -n 2 python3 python/examples/rank_by_hand.py
import paradiff

pipe = paradiff.FluxPipeline.from_pretrained("models/tiny-flux-shapes")
rank = paradiff.PartialState().process_index

if rank == 0:
    prompt = "a small green triangle in the center on a white background"
elif rank == 1:
    prompt = "a large yellow circle at the bottom left on a black background"

image = pipe(prompt, height=256, width=256, num_inference_steps=28, max_sequence_length=32,
             generator=paradiff.Generator().manual_seed(0)).images[0]
image.save(f"out/{'_'.join(prompt.split()[:3])}.png")
