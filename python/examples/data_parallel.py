# Data parallel, accelerate's way: every process holds the whole pipeline and takes its share of
# the prompts.  mpirun -n 2 python3 python/examples/data_parallel.py
import paradiff

pipe = paradiff.FluxPipeline.from_pretrained("models/tiny-flux-shapes")
distributed_state = paradiff.PartialState()

prompts = ["a large red circle at the top left on a white background",
           "a large blue square at the bottom right on a gray background"]
with distributed_state.split_between_processes(prompts) as prompt:
    result = pipe(prompt, height=256, width=256, num_inference_steps=28, max_sequence_length=32,
                  generator=paradiff.Generator().manual_seed(0)).images[0]
    result.save(f"out/result_{distributed_state.process_index}.png")
