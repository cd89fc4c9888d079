# Context parallel: one image's tokens split across the processes (Ulysses here; ring_degree=2
# passes K/V around a ring instead, and both > 1 on 4 processes is unified attention).
#   mpirun -n 2 python3 python/examples/context_parallel.py
import paradiff

pipe = paradiff.FluxPipeline.from_pretrained("models/tiny-flux-shapes", torch_dtype="bfloat16")
pipe.transformer.enable_parallelism(config=paradiff.ContextParallelConfig(ulysses_degree=2))

prompt = "a large purple square in the center on a white background"
# Every process calls the pipeline with the same arguments and receives the same image.
image = pipe(prompt, height=256, width=256, num_inference_steps=28, max_sequence_length=32,
             generator=paradiff.Generator().manual_seed(42)).images[0]

if paradiff.PartialState().is_main_process:
    image.save("out/context_parallel.png")
