# One process: the bundled model, as diffusers' FluxPipeline would run it.
#   python3 python/examples/text_to_image.py
import paradiff

pipe = paradiff.FluxPipeline.from_pretrained("models/tiny-flux-shapes", torch_dtype="float32")
image = pipe(
    "a large red circle at the top left on a white background",
    height=256,
    width=256,
    num_inference_steps=28,
    max_sequence_length=32,
    generator=paradiff.Generator().manual_seed(0),
).images[0]
image.save("out/python_circle.png")
