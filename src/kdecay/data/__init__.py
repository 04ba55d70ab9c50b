"""The data stage: CIFAR facts, download, safe preparation, the device-resident loader, synth.

``datasets`` (static facts) -> ``download`` (md5-checked archive) -> ``prepare`` (safe
extraction + restricted unpickling -> one ``.pt`` file) -> ``loader`` (uint8 set on the
device, per-sample augmentation from ``augment``); ``synth`` writes CIFAR-format archives.
"""
