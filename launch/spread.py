# Mean ± 95 % interval over seeds (Student's t) and the Welch interval of a difference of means, for the reports
# that launch/generalisation, launch/sharp-minima, launch/initialisation and launch/dlfs print.
import math
import statistics

# Student's t at 97.5 % for 1…10 degrees of freedom (index = degrees of freedom; beyond 10 the 10's value, a little wide).
T975 = [0, 12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228]


def t975(df):
    return T975[max(1, min(int(df), 10))]


def spread(values):
    """(mean, standard deviation, half-width of the 95 % interval of the mean, count)."""
    n = len(values)
    m = statistics.mean(values)
    s = statistics.stdev(values) if n > 1 else 0.0
    return m, s, (t975(n - 1) * s / math.sqrt(n) if n > 1 else 0.0), n


def cell(values, digits=4):
    """'mean ± half-width', '—' without values, 'diverged' when one is infinite."""
    if not values:
        return "—"
    if any(math.isinf(v) for v in values):
        return "diverged"
    m, _, h, _ = spread(values)
    return f"{m:.{digits}f} ± {h:.{digits}f}"


def welch(a, b):
    """mean(b) − mean(a) and the half-width of its 95 % interval (Welch–Satterthwaite), or None below two each."""
    if len(a) < 2 or len(b) < 2:
        return None
    ma, sa, _, na = spread(a)
    mb, sb, _, nb = spread(b)
    va, vb = sa * sa / na, sb * sb / nb
    df = (va + vb) ** 2 / (va * va / (na - 1) + vb * vb / (nb - 1)) if va + vb > 0 else 1
    return mb - ma, t975(df) * math.sqrt(va + vb)
