"""Command line: up, down, status, inventory, upstream, tag, small-image, cut, restore, ssh, profiles."""
from __future__ import annotations

import argparse
import json
import os
import re
import sys

from . import config, hosts, hub, profiles, registry
from .bed import Bed
from .system import BedError

_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=.*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def host_profiles(count: int | None, profile: str | None, listed: str | None) -> list:
    """Profile per host: --profiles in order, the rest --profile (default mi300x-8gpu)."""
    names = [p.strip() for p in listed.split(",") if p.strip()] if listed else []
    count = count if count is not None else (len(names) or 1)
    if not 1 <= count <= config.MAX_HOSTS:
        raise BedError(f"--hosts must be 1..{config.MAX_HOSTS}, got {count}")
    if len(names) > count:
        raise BedError(f"--profiles names {len(names)} profiles for {count} hosts")
    names += [profile or profiles.DEFAULT_PROFILE] * (count - len(names))
    for name in names:
        profiles.get_profile(name)  # raises with the list of known profiles
    return names


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python3 -m simfleet", description=__doc__.splitlines()[0] + "\n\n"
                                     + "A simulated AMD GPU fleet for testing sglang_rocm.fleet.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="build (or reuse) a bed of N simulated hosts")
    up.add_argument("--hosts", type=int, help="number of hosts (default: as many as --profiles, else 1)")
    up.add_argument("--profile", help=f"profile of every host (default {profiles.DEFAULT_PROFILE})")
    up.add_argument("--profiles", help="comma-separated profiles, one per host in order; "
                    "hosts beyond the list get --profile")
    up.add_argument("--image", help="engine image to publish as " + config.IMAGE)
    up.add_argument("--registry-auth", action="store_true",
                    help=f"also serve the registry with TLS and htpasswd auth on {config.REGISTRY_TLS}")
    up.add_argument("--fresh", action="store_true", help="rebuild even if a matching bed is up")
    up.add_argument("--timeout", type=float, default=180, help="seconds to wait for the daemons (default 180)")
    up.add_argument("--keep-on-failure", action="store_true", help="leave a failed bed in place to inspect it")
    up.add_argument("--upstream-rate", metavar="RATE",
                    help="shape the upstream link (registry and model hub) to RATE in tc's units, e.g. 200mbit "
                    "(default: unshaped); host-to-host links are never shaped")
    up.add_argument("--hub-repo", help=f"repo id the model hub serves (default {hub.DEFAULT_REPO})")
    up.add_argument("--hub-size", type=hub.parse_size, metavar="SIZE",
                    help=f"total size of the generated model's shards, e.g. 64MiB (default {hub.DEFAULT_SIZE >> 20}MiB)")
    up.add_argument("--hub-shards", type=int, help=f"number of safetensors shards (default {hub.DEFAULT_SHARDS})")
    up.add_argument("--hub-token", action="store_true",
                    help="the hub requires a generated token (inventory: simfleet_hub_token_file)")

    sub.add_parser("down", help="remove everything the bed made (keeps the persistent cache)")
    link = sub.add_parser("upstream", help="the upstream link as JSON: bytes that crossed it, rate, hub")
    link.add_argument("--rate", metavar="RATE", help="first set the link's rate (tc units, e.g. 200mbit; 'off' unshapes)")
    status = sub.add_parser("status", help="per host: ssh port, docker ping, profile, link")
    status.add_argument("--json", action="store_true")
    inv = sub.add_parser("inventory", help="write and print the YAML inventory")
    inv.add_argument("--output", help="also write it here (it is always written to the state dir)")
    inv.add_argument("--path", action="store_true", help="print only the inventory file's path")

    tag = sub.add_parser("tag", help="publish a variant of the stand-in image under a new tag")
    tag.add_argument("new_tag")
    tag.add_argument("--env", action="append", default=[], metavar="K=V", help="ENV baked into the image")
    tag.add_argument("--from", dest="source", help="source image in the engine (default: the image `up --image` published)")

    for verb, text in (("cut", "take a host off the network"), ("restore", "put a cut host back")):
        sub.add_parser(verb, help=text).add_argument("host")
    ssh = sub.add_parser("ssh", help="ssh into a host as Ansible does")
    ssh.add_argument("host")
    ssh.add_argument("remote", nargs=argparse.REMAINDER)
    sub.add_parser("profiles", help="list the host profiles")
    small = sub.add_parser("small-image", help="publish a small image (bash, sleep; a few MB) unless the registry has it")
    small.add_argument("--tag", default=registry.SMALL_TAG)
    return parser


def healthy(report: dict) -> bool:
    """Registries answer, every dockerd answers, every host not cut answers on ssh."""
    return all(report["registry"].values()) and report["upstream"]["hub"]["up"] and all(
        h["docker"] and (h["ssh"] or h["link"] == "cut") for h in report["hosts"])


def _print_status(report: dict) -> None:
    for address, ok in report["registry"].items():
        print(f"registry {address}: {'up' if ok else 'DOWN'}")
    hub_info = report["upstream"]["hub"]
    print(f"model hub {hub_info['endpoint']}: {'up' if hub_info['up'] else 'DOWN'} "
          f"({hub_info['repo']}@{hub_info['commit'][:12]}, {hub_info['bytes']} bytes)")
    print(f"upstream link {report['upstream']['interface']}: {report['upstream']['rate'] or 'unshaped'}, "
          f"{report['upstream']['tx_bytes']} bytes sent, {report['upstream']['rx_bytes']} received")
    for image, present in report["image"].items():
        print(f"image {image}: {'present' if present else 'missing'}")
    print(f"{'HOST':6} {'ADDRESS':14} {'PROFILE':18} {'SSH':6} {'DOCKER':7} LINK")
    for host in report["hosts"]:
        print(f"{host['name']:6} {host['address']:14} {host['profile']:18} "
              f"{'open' if host['ssh'] else 'closed':6} {'ok' if host['docker'] else 'DOWN':7} {host['link']}")


def main(argv: list | None = None) -> int:
    args = _parser().parse_args(argv)
    bed = Bed()
    try:
        if args.command == "up":
            bed.up(host_profiles(args.hosts, args.profile, args.profiles), image=args.image,
                   auth=args.registry_auth, fresh=args.fresh, timeout=args.timeout,
                   keep_on_failure=args.keep_on_failure, upstream_rate=args.upstream_rate,
                   hub_params={"repo": args.hub_repo, "size": args.hub_size, "shards": args.hub_shards},
                   hub_token=args.hub_token)
        elif args.command == "down":
            bed.down()
        elif args.command == "upstream":
            print(json.dumps(bed.upstream_report(args.rate, change=args.rate is not None), indent=2))
        elif args.command == "status":
            report = bed.status()
            if args.json:
                print(json.dumps(report, indent=2))
            else:
                _print_status(report)
            return 0 if healthy(report) else 1
        elif args.command == "inventory":
            text = bed.write_inventory()
            if args.output:
                with open(args.output, "w") as out:
                    out.write(text)
            print(bed.paths.inventory if args.path else text, end="\n" if args.path else "")
        elif args.command == "tag":
            bad = [e for e in args.env if not _ENV_RE.match(e)]
            if bad or not _TAG_RE.match(args.new_tag):
                raise BedError(f"bad tag {args.new_tag!r} or --env (want K=V): {bad}")
            digest = bed.tag(args.new_tag, args.env, args.source)
            print(f"{config.REGISTRY}/{config.IMAGE_REPOSITORY}:{args.new_tag} {digest}")
        elif args.command in ("cut", "restore"):
            bed.cut(args.host, restore=args.command == "restore")
            print(f"{args.host}: {'cut off the network' if args.command == 'cut' else 'back on the network'}")
        elif args.command == "ssh":
            state = bed.require_state()
            index = next((h["index"] for h in state["hosts"] if config.host_name(h["index"]) == args.host), None)
            if index is None:
                raise BedError(f"no host {args.host!r} in the bed")
            argv = hosts.ssh_command(bed.paths, config.host_address(index), *args.remote)
            os.execvp(argv[0], argv)
        elif args.command == "small-image":
            print(registry.publish_small(args.tag))
        elif args.command == "profiles":
            for profile in profiles.PROFILES.values():
                print(f"{profile.name:18} {profile.summary}")
    except BedError as err:
        print(f"simfleet: error: {err}", file=sys.stderr)
        return 1
    return 0
