"""w2amsn-plugin: W²AMSN (Wang et al., IEEE TCSVT 2021) for MR super-resolution as a BasicSR plugin.

Install torch first (CPU or CUDA build, see README), then BasicSR without build isolation, then
this package: BasicSR 1.4.2 ships only an sdist whose build step would otherwise download a CUDA
torch. This file imports nothing but setuptools.
"""
from setuptools import find_packages, setup

with open("README.md", encoding="utf-8") as f:
    long_description = f.read()

setup(
    name="w2amsn-plugin",
    version="0.1.0",
    description="W²AMSN MR image super-resolution for BasicSR: network, IXI LMDB data, "
                "foreground metrics, self-ensemble, whole-volume inference",
    long_description=long_description,
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    packages=find_packages(include=["w2amsn_plugin", "w2amsn_plugin.*"]),
    package_data={"w2amsn_plugin": ["sample_data/*"]},
    python_requires=">=3.9,<3.13",
    install_requires=[
        "basicsr==1.4.2",
        "torch>=2.1",
        # torchvision 0.29 needs torch 2.14 and would replace an installed CPU torch 2.13
        "torchvision>=0.16,<=0.28.0",
        "nibabel>=4",
        "numpy",
        "opencv-python",
        "lmdb",
        "pyyaml",
        "scipy",
        "tqdm",
        "matplotlib",
        "tensorboard",  # BasicSR's tb_logger (use_tb_logger: true in our options)
    ],
    extras_require={"test": ["pytest>=7", "scikit-image>=0.20"]},
    entry_points={
        "console_scripts": [
            "basicsr=w2amsn_plugin.cli:basicsr_main",
            "w2amsn=w2amsn_plugin.cli:w2amsn_main",
        ]
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Medical Science Apps.",
        "Topic :: Scientific/Engineering :: Image Processing",
    ],
)
