"""`clipcov data build NAME --out DIR`: make a built-in pool from installed Debian packages."""
from ..pipeline import pools
from ..pipeline.pools.debian import MissingPackage
from ..pipeline.pools.fashion import NOISE


def cmd_build(args):
    options = {"ood": args.ood, "misaligned": args.misaligned} if args.name == "fashion-web" else {}
    for flag, value, default in (("--ood", args.ood, 0.0), ("--misaligned", args.misaligned, NOISE["misaligned"])):
        if value != default and args.name != "fashion-web":
            raise ValueError(f"{flag} applies to fashion-web only")
    try:
        m = pools.build(args.name, args.out, limit=args.limit, seed=args.seed, **options)
    except MissingPackage as e:
        raise FileNotFoundError(f"{args.name} {e}") from None
    print(f"wrote {m['pairs']} pairs ({m['skipped']} skipped) to {args.out}/pairs.tsv; "
          f"noise: {m['noise_counts']}")


def register(sub):
    p = sub.add_parser("data", help="build a built-in image-caption pool")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    b = dsub.add_parser("build", help="build pool NAME into DIR (images/, pairs.tsv, manifest.json)",
                        description="Build a pool from installed Debian packages: fashion-web (noisy "
                                    "web-like Fashion-MNIST pairs), fashion-proxy (disjoint clean pairs "
                                    "for a proxy model), fashion-mnist-test and digits (evaluation), "
                                    "clipart, stamps, emoji.")
    b.add_argument("name", metavar="NAME", choices=pools.NAMES, help=", ".join(pools.NAMES))
    b.add_argument("--out", required=True, help="output folder DIR")
    b.add_argument("--limit", type=int, help="at most this many source images (fashion-web: base images, "
                                             "before near-duplicates and out-of-domain pairs are added)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--ood", type=float, default=0.0,
                   help="fashion-web: add this fraction of clip-art and emoji pairs as out-of-domain data")
    b.add_argument("--misaligned", type=float, default=NOISE["misaligned"],
                   help="fashion-web: the share of base images captioned as another class (default "
                        f"{NOISE['misaligned']:g})")
    b.set_defaults(func=cmd_build)
