"""synthetic - tiny procedural image domains for the examples and tests (standard
library only, deterministic).

Three domains of 32x32x3 uint8 NHWC images, simpler than examples/synthetic.h and fast
in pure Python (every image is built from whole-row byte operations):

  stripes  - horizontal, vertical or diagonal stripes (3 classes), random period,
             phase and contrast;
  colours  - a square patch that is red, orange, yellow, green, blue or purple (6
             classes), random place, size, shade and hue jitter, on a noisy background;
  position - a bright square in one of the four quadrants (4 classes), random size,
             offset and grey level, and a dimmer distractor square anywhere.

make(domain, count, seed=0, start=0) -> (bytes of count*3072 values, list of labels).
Image i of a domain depends only on (domain, seed, start + i).
"""

import random

SIZE = 32
CHANNELS = 3
PIXELS = SIZE * SIZE * CHANNELS
DOMAINS = ("stripes", "colours", "position")
CLASSES = {"stripes": 3, "colours": 6, "position": 4}

# background noise: random bytes mapped to 60..99
_NOISE = bytes(60 + (b * 40) // 256 for b in range(256))
_COLOURS = ((1.0, 0.15, 0.1), (1.0, 0.55, 0.1), (0.95, 0.9, 0.1), (0.15, 0.9, 0.2),
            (0.15, 0.25, 1.0), (0.6, 0.2, 0.9))


def _rng(domain, seed, index):
    return random.Random((DOMAINS.index(domain) + 1) * 1000003 + seed * 7919 + index * 104729)


def _randbytes(r, n):
    if hasattr(r, "randbytes"):
        return r.randbytes(n)
    return bytes(r.getrandbits(8) for _ in range(n))


def image(domain, index, seed=0):
    """(bytes of one 32x32x3 image, label)."""
    r = _rng(domain, seed, index)
    label = r.randrange(CLASSES[domain])
    row = SIZE * CHANNELS
    if domain == "stripes":
        period = r.randint(3, 6)
        phase = r.randrange(period)
        lo, hi = r.randint(20, 80), r.randint(170, 240)
        line = b"".join(bytes((hi if ((x + phase) % period) < period / 2 else lo,)) * CHANNELS
                        for x in range(SIZE))
        rows = []
        for y in range(SIZE):
            if label == 0:  # horizontal: a whole row is bright or dark
                v = hi if ((y + phase) % period) < period / 2 else lo
                rows.append(bytes((v,)) * row)
            elif label == 1:  # vertical: the same row everywhere
                rows.append(line)
            else:  # diagonal: the row pattern shifted by y
                s = (y % period) * CHANNELS
                rows.append(line[s:] + line[:s])
        img = bytearray(b"".join(rows))
        noise = _randbytes(r, PIXELS)  # light noise on every pixel: +-8 by xor of low bits
        img = bytes(a ^ (b & 7) for a, b in zip(img, noise))
        return img, label
    img = bytearray(_randbytes(r, PIXELS).translate(_NOISE))
    side = r.randint(8, 13)
    if domain == "colours":
        shade = 0.6 + 0.4 * r.random()
        rgb = bytes(min(255, int(255 * shade * (c + 0.25 * (r.random() - 0.5)) if c > 0.3 else
                                 255 * shade * c)) for c in _COLOURS[label])
        x0, y0 = r.randint(0, SIZE - side), r.randint(0, SIZE - side)
    else:  # position: a dimmer distractor first, then the bright square over it
        d_side, dim = r.randint(4, 8), bytes((r.randint(120, 160),)) * CHANNELS
        dx, dy = r.randint(0, SIZE - d_side), r.randint(0, SIZE - d_side)
        for y in range(dy, dy + d_side):
            start = (y * SIZE + dx) * CHANNELS
            img[start:start + d_side * CHANNELS] = dim * d_side
        grey = r.randint(180, 250)
        rgb = bytes((grey,)) * CHANNELS
        half = SIZE // 2
        qx, qy = label % 2, label // 2
        x0 = qx * half + r.randint(0, half - min(side, half))
        y0 = qy * half + r.randint(0, half - min(side, half))
        side = min(side, half)
    patch = rgb * side
    for y in range(y0, y0 + side):
        start = (y * SIZE + x0) * CHANNELS
        img[start:start + side * CHANNELS] = patch
    return bytes(img), label


def make(domain, count, seed=0, start=0):
    """count images of a domain: (bytes of count x 32 x 32 x 3 uint8, list of labels)."""
    parts, labels = [], []
    for i in range(start, start + count):
        img, label = image(domain, i, seed)
        parts.append(img)
        labels.append(label)
    return b"".join(parts), labels
