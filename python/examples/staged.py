# The guide's staged workflow: encode the prompt, denoise to latents, decode. Components a stage
# does not need are turned off (=None) and never loaded.
#   python3 python/examples/staged.py
import paradiff

prompt = "a large orange circle at the top right on a blue background"
model = "models/tiny-flux-shapes"

# Stage 1: the text encoders alone.
pipe = paradiff.FluxPipeline.from_pretrained(model, transformer=None, vae=None)
prompt_embeds, pooled_prompt_embeds, text_ids = pipe.encode_prompt(prompt=prompt, prompt_2=None,
                                                                   max_sequence_length=32)
del pipe

# Stage 2: the transformer alone, to latents.
pipe = paradiff.FluxPipeline.from_pretrained(model, text_encoder=None, text_encoder_2=None,
                                             tokenizer=None, tokenizer_2=None, vae=None)
latents = pipe(prompt_embeds=prompt_embeds, pooled_prompt_embeds=pooled_prompt_embeds,
               num_inference_steps=28, height=256, width=256, output_type="latent",
               generator=paradiff.Generator().manual_seed(0)).images
del pipe

# Stage 3: the VAE alone (diffusers unpacks and decodes by hand; paradiff's decode does both).
pipe = paradiff.FluxPipeline.from_pretrained(model, text_encoder=None, text_encoder_2=None,
                                             tokenizer=None, tokenizer_2=None, transformer=None)
image = pipe.decode(latents, height=256, width=256, output_type="pil")[0]
image.save("out/staged.png")
