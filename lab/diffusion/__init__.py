"""The conditional poster diffusion model: denoiser, noise schedule and samplers, training and sampling."""
