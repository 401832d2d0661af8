"""Small-scale proxies for large-scale Transformer training instabilities
(Wortsman et al. 2023): the one-command reproduction and its report."""
