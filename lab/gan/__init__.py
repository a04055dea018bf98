"""The conditional poster GAN: models, training and sampling."""
