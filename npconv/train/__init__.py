"""A small training stack in NumPy: layers with forward and backward, a loss, two optimizers, a loop.

Where to look:

=====================  ===================================================================
``layers.py``          the layers, each with ``forward`` and ``backward``: convolutions
                       (through ``npconv.conv2d`` / ``npconv.conv2d_backward`` and their
                       wrappers), linear, batch norm, ReLU, pooling, flatten, residual
``losses.py``          softmax cross-entropy and its gradient
``optimizers.py``      SGD with momentum and Adam, PyTorch's update rules
``initialisation.py``  PyTorch's default initialisation, from a seed
``model.py``           a trainable model built from a network description
                       (``npconv.network`` / ``npconv.networks`` / a TOML file)
``data.py``            scikit-learn's digits, ``.npz`` files, mini-batches
``loop.py``            the training loop: epochs, evaluation, Ctrl-C, divergence
``counting.py``        a training step's mults: formulas beside what the kernels counted
``checkpoint.py``      weights to and from ``.npz``, written atomically
``gradcheck.py``       a layer's backward against finite differences
``torch_twin.py``      the same model in PyTorch with the same weights (for comparisons)
``command.py``         ``npconv train``
=====================  ===================================================================

A minimal run::

    from npconv.networks import build
    from npconv.train import data, loop, model, optimizers

    digits = data.load_digits()
    network, _ = model.adapt(build("small_standard"), *digits.image_shape, digits.classes)
    net = model.build_model(network, seed=0, method="im2col")
    run = loop.train(net, digits, optimizers.Adam(net.parameters(), lr=0.01), epochs=10, batch_size=32)
    print(run.final_accuracy)

Importing this package imports NumPy; ``npconv`` itself and its command
line import it only when ``npconv train`` runs.
"""
