"""EM3: end-to-end multimodal ranking."""
