# The runs of a finished study's chosen points, for the reports of launch/generalisation and launch/sharp-minima.
import csv


def chosen(folder):
    """Per row of best.csv (a variant at a batch size): that row and the trials of study.csv at its chosen rate, one
    per seed, diverged ones included."""
    trials = list(csv.DictReader(open(f"{folder}/study.csv")))
    return [(b, [t for t in trials if (t["variant"], t["batch"], t["lr"]) == (b["variant"], b["batch"], b["best_lr"])])
            for b in csv.DictReader(open(f"{folder}/best.csv"))]
