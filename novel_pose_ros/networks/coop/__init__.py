"""Co-op networks (CVPR 2025; paper facts in shared/design/METHODS.md, "Co-op").

coarse_*: the coarse stage — per query patch, a classification over the template's patches plus
"no match" and an offset inside the matched patch; refiner_*: the render-and-compare refiner —
dense Laplace flow, certainty and sensitivity from a render at the current pose to the query;
selector_*: a score of a pose hypothesis from the query and its render. Import from the modules
(coarse_config.py has no PyTorch dependency).
"""
