"""Batched, differentiable weighted PnP (Levenberg–Marquardt then Gauss–Newton) and the Co-op weights.

Conventions (docs/CONVENTIONS.md, STYLE.md "Our conventions"): metres and radians; OpenCV camera (x right,
y down, z forward) with pixel centres at integer coordinates, so a camera point (x, y, z) is seen
at pixel K · (x/z, y/z, 1); `T_cam_obj` maps object points into the camera: p_cam = T_cam_obj p_obj.

Problem: given object points P_i [B,N,3], their observed pixels u_i [B,N,2] and weights
w_i ≥ 0 [B,N], find T_cam_obj minimising  E(T) = Σ_i w_i ‖π(K, T P_i) − u_i‖².
Update: T ← exp(ξ^) · T with ξ = (ρ, ω) ∈ R⁶ (translation first, then rotation), a left
increment, i.e. a perturbation in the camera frame: X = T P ↦ X + ρ + ω × X to first order.
Jacobian of the residual of one point X = (X, Y, Z), x = X/Z, y = Y/Z, K = [[fx, s, cx], [0, fy, cy]]:
    ∂π/∂X = [[fx/Z, s/Z, −(fx x + s y)/Z], [0, fy/Z, −fy y/Z]]        (2×3)
    ∂X/∂ξ = [I₃ | −[X]×],  −[X]× = [[0, Z, −Y], [−Z, 0, X], [Y, −X, 0]]  (3×6)
    J = ∂π/∂X · ∂X/∂ξ                                                  (2×6)
Normal equations per problem: H = Σ w JᵀJ, g = Σ w Jᵀr (r = π − u), solved with torch.linalg.solve:
    LM:  (H + λ diag(H) + ε I) ξ = −g, λ adapted per problem (÷10 after a step that lowers E,
         ×10 and the step rejected otherwise; the accept/reject decision carries no gradient);
    GN:  (H + ε I) ξ = −g,  ε = EPS_REL · mean(diag H) + EPS_ABS (keeps a rank-deficient or
         all-zero H solvable; it only slows convergence along weak directions, never moves the minimum).
Points with camera depth ≤ min_depth_m get zero weight (their depth is clamped for the maths).
All operations are out-of-place torch ops: gradients flow from T to pixels, weights, points, K
and T_init (unrolled iterations; at convergence this is the implicit-function gradient).

Co-op weights: the refiner predicts per render pixel a Laplace flow (mean μ, scale b), a
certainty logit and a sensitivity logit; W = sigmoid(certainty) · sigmoid(sensitivity) · P_R with
P_R = 1 − exp(−R/b), the probability that a 1-D Laplace(μ, b) error lies within ±R.
"""
from __future__ import annotations

import torch

DEFAULT_LM_ITERATIONS = 3   # the paper: 3 Levenberg–Marquardt iterations, then Gauss–Newton
# 7 GN steps: GN converges quadratically once LM has brought the pose into the basin; from the
# training noise (15° per axis ≈ 26°, 5 cm) 3 LM + 3 GN reach float64 precision on exact data,
# from 40° / 8 cm 3 + 4; the spare steps cover noisy, poorly conditioned problems (few or
# clustered weighted points) for ~1 ms each, and the last steps near the fixed point make the
# unrolled gradient close to the implicit-function one.
DEFAULT_GN_ITERATIONS = 7
DEFAULT_DAMPING = 1e-3      # initial λ of LM (Marquardt's scaling by diag(H))
MIN_DEPTH_M = 1e-3          # points closer to (or behind) the camera plane get zero weight
EPS_REL = {torch.float32: 1e-6, torch.float64: 1e-9}
EPS_ABS = 1e-12
BEHIND_PENALTY_PX = 1e3    # residual of a weighted point behind the camera in the LM cost
TAYLOR_THETA2 = 1e-4        # θ² below which se3_exp uses its Taylor series (error < θ⁶/5040)
# Co-op's flow radius R: 2 px of the 256 refiner crop, i.e. 0.5 of its 4-px cells (networks/coop).
DEFAULT_FLOW_RADIUS_PX = 2.0
DEFAULT_FLOW_RADIUS_CELLS = 0.5


def _check(name: str, tensor: torch.Tensor, shape: tuple[int | None, ...]) -> torch.Tensor:
    """`tensor` if it is a floating tensor of shape `shape` (None = any size), else ValueError."""
    ok = tensor.dim() == len(shape) and all(s is None or s == a for s, a in zip(shape, tensor.shape))
    if not ok:
        expected = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name}: expected shape {expected}, got {tuple(tensor.shape)}")
    if not tensor.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got {tensor.dtype}")
    return tensor


def skew(v: torch.Tensor) -> torch.Tensor:
    """[..., 3] → [..., 3, 3] cross-product matrices: skew(a) @ b = a × b."""
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(*v.shape[:-1], 3, 3)


def se3_exp(xi: torch.Tensor) -> torch.Tensor:
    """Exponential map of se(3): xi [B,6] = (ρ, ω) → [B,4,4] = [[R, Vρ], [0, 1]].

    R = I + A W + B W², V = I + B W + C W², W = skew(ω), θ = ‖ω‖, A = sin θ/θ,
    B = (1 − cos θ)/θ², C = (θ − sin θ)/θ³; Taylor series in θ² when θ² < TAYLOR_THETA2, so the
    map and its gradient are exact and finite at ξ = 0 (exp(0) = I exactly).
    """
    _check("xi", xi, (None, 6))
    rho, omega = xi[:, :3], xi[:, 3:]
    theta2 = (omega * omega).sum(-1)
    small = theta2 < TAYLOR_THETA2
    t2 = torch.where(small, torch.ones_like(theta2), theta2)  # safe: no 0/0 in the unused branch
    t = torch.sqrt(t2)
    a = torch.where(small, 1 - theta2 / 6 + theta2 ** 2 / 120, torch.sin(t) / t)
    b = torch.where(small, 0.5 - theta2 / 24 + theta2 ** 2 / 720, 2 * torch.sin(t / 2) ** 2 / t2)
    c = torch.where(small, 1 / 6 - theta2 / 120 + theta2 ** 2 / 5040, (t - torch.sin(t)) / (t2 * t))
    W = skew(omega)
    W2 = W @ W
    eye = torch.eye(3, dtype=xi.dtype, device=xi.device).expand_as(W)
    R = eye + a[:, None, None] * W + b[:, None, None] * W2
    V = eye + b[:, None, None] * W + c[:, None, None] * W2
    top = torch.cat([R, (V @ rho.unsqueeze(-1))], dim=-1)
    bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=xi.dtype, device=xi.device).expand(len(xi), 1, 4)
    return torch.cat([top, bottom], dim=-2)


def _project(points_obj, K, T, min_depth_m):
    """Camera points X [B,N,3], in-front mask [B,N] and pixels π [B,N,2] (depth clamped at min_depth_m)."""
    X = points_obj @ T[:, :3, :3].transpose(1, 2) + T[:, None, :3, 3]
    z = X[..., 2].clamp(min=min_depth_m)
    x, y = X[..., 0] / z, X[..., 1] / z
    uv = torch.stack([K[:, 0, 0, None] * x + K[:, 0, 1, None] * y + K[:, 0, 2, None],
                      K[:, 1, 1, None] * y + K[:, 1, 2, None]], dim=-1)
    return X, X[..., 2] > min_depth_m, uv


def _linearise(points_obj, pixels, weights, K, T, min_depth_m):
    """Residuals r [B,N,2], effective weights w [B,N] and Jacobians J [B,N,2,6] at pose T."""
    X, in_front, uv = _project(points_obj, K, T, min_depth_m)
    w = torch.where(in_front, weights, torch.zeros_like(weights))
    r = torch.where((w > 0).unsqueeze(-1), uv - pixels, torch.zeros_like(uv))  # ignore NaN of unused points
    z = X[..., 2].clamp(min=min_depth_m)
    x, y = X[..., 0] / z, X[..., 1] / z
    fx, s, fy = K[:, 0, 0, None], K[:, 0, 1, None], K[:, 1, 1, None]
    zero = torch.zeros_like(z)
    d_proj = torch.stack([fx / z, s / z, -(fx * x + s * y) / z,
                          zero, fy / z, -fy * y / z], dim=-1).reshape(*z.shape, 2, 3)
    eye = torch.eye(3, dtype=X.dtype, device=X.device).expand(*z.shape, 3, 3)
    d_point = torch.cat([eye, -skew(X)], dim=-1)
    return r, w, d_proj @ d_point


def _cost(points_obj, pixels, weights, K, T, min_depth_m):
    """E(T) [B] with the input weights; a weighted point behind the camera costs BEHIND_PENALTY_PX²."""
    _, in_front, uv = _project(points_obj, K, T, min_depth_m)
    used = (weights > 0).unsqueeze(-1)
    r = torch.where(used, uv - pixels, torch.zeros_like(uv))
    r = torch.where(in_front.unsqueeze(-1), r, torch.full_like(r, BEHIND_PENALTY_PX))
    return (weights.unsqueeze(-1) * r * r).sum(dim=(1, 2))


def _step(points_obj, pixels, weights, K, T, min_depth_m, lam):
    """Damped normal-equation step ξ [B,6]: (H + λ diag H + ε I) ξ = −g."""
    r, w, J = _linearise(points_obj, pixels, weights, K, T, min_depth_m)
    Jw = J * w[..., None, None]
    H = torch.einsum("bnki,bnkj->bij", Jw, J)
    g = torch.einsum("bnki,bnk->bi", Jw, r)
    diag = torch.diagonal(H, dim1=-2, dim2=-1)
    eps = EPS_REL.get(H.dtype, 1e-6) * diag.mean(-1) + EPS_ABS
    A = H + torch.diag_embed(lam[:, None] * diag + eps[:, None])
    return torch.linalg.solve(A, -g.unsqueeze(-1)).squeeze(-1)


def lm_pnp(points_obj: torch.Tensor, pixels: torch.Tensor, weights: torch.Tensor, K: torch.Tensor,
           T_init: torch.Tensor, lm_iterations: int = DEFAULT_LM_ITERATIONS,
           gn_iterations: int = DEFAULT_GN_ITERATIONS, damping: float = DEFAULT_DAMPING,
           min_depth_m: float = MIN_DEPTH_M) -> torch.Tensor:
    """T_cam_obj [B,4,4] minimising Σ w ‖π(K, T P) − u‖² from T_init (module docstring for the maths).

    points_obj [B,N,3] metres (e.g. render pixels lifted with the rendered depth, in the object frame);
    pixels [B,N,2] observed pixels (integer-centred) in the image of K; weights [B,N] ≥ 0;
    K [B,3,3] or [3,3]; T_init [B,4,4]. lm_iterations LM steps with initial damping λ = `damping`,
    then gn_iterations Gauss–Newton steps. All inputs are cast to the dtype of points_obj
    (float32 or float64). A problem whose weights are all zero returns T_init unchanged.
    """
    _check("points_obj", points_obj, (None, None, 3))
    B, N = points_obj.shape[:2]
    _check("pixels", pixels, (B, N, 2))
    _check("weights", weights, (B, N))
    _check("K", K, (3, 3) if K.dim() == 2 else (B, 3, 3))
    _check("T_init", T_init, (B, 4, 4))
    if lm_iterations < 0 or gn_iterations < 0:
        raise ValueError(f"iterations must be >= 0, got lm={lm_iterations}, gn={gn_iterations}")
    dtype = points_obj.dtype
    pixels, weights, T_init = pixels.to(dtype), weights.to(dtype), T_init.to(dtype)
    K = K.to(dtype).expand(B, 3, 3)
    args = (points_obj, pixels, weights, K)
    T = T_init
    lam = torch.full((B,), float(damping), dtype=dtype, device=points_obj.device)
    cost = _cost(*args, T, min_depth_m)
    for _ in range(lm_iterations):
        T_new = se3_exp(_step(*args, T, min_depth_m, lam)) @ T
        cost_new = _cost(*args, T_new, min_depth_m)
        better = (cost_new < cost).detach()  # the decision carries no gradient, the chosen pose does
        T = torch.where(better[:, None, None], T_new, T)
        cost = torch.where(better, cost_new, cost)
        lam = torch.where(better, lam * 0.1, lam * 10.0).detach()
    no_damping = torch.zeros_like(lam)
    for _ in range(gn_iterations):
        T = se3_exp(_step(*args, T, min_depth_m, no_damping)) @ T
    return T


def flow_probability(b: torch.Tensor, radius: float) -> torch.Tensor:
    """P_R = 1 − exp(−R/b), elementwise: probability that a Laplace(μ, b) error is within ±R.

    b and radius in the same unit: pixels of the refiner crop (DEFAULT_FLOW_RADIUS_PX) or the
    4-px cells of the refiner's 64×64 grid, where b is predicted (DEFAULT_FLOW_RADIUS_CELLS).
    """
    if not radius > 0:
        raise ValueError(f"radius: expected > 0, got {radius}")
    return -torch.expm1(-radius / b)


def correspondence_weights(certainty_logits: torch.Tensor, sensitivity_logits: torch.Tensor,
                           b: torch.Tensor, radius: float) -> torch.Tensor:
    """Co-op's W = sigmoid(certainty) · sigmoid(sensitivity) · (1 − exp(−R/b)), elementwise.

    certainty_logits, sensitivity_logits, b: broadcastable, e.g. [B,64,64] each (the refiner
    network outputs logits for both heads; b = exp(log_b)). radius in the unit of b.
    """
    return torch.sigmoid(certainty_logits) * torch.sigmoid(sensitivity_logits) * flow_probability(b, radius)
