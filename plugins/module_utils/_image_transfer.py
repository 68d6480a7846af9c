# Copyright: contributors to sglang_rocm.fleet
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
#
# PRIVATE: this module_utils file is for sglang_rocm.fleet's own modules only; it is not a
# public API and may change without notice.
"""Logic of the image_transfer module: an image as one verified file for the fan-out.

``saved`` (on the seed): ``docker save`` the image into the staging directory under a name made
from its ID, hash it once, and describe it as a one-file manifest (``_manifest.py``) whose
revision is the image ID; the stamp marks it verified, so the seed serves it at once.
``loaded`` (on every host of the fan-out): when the host's image is not the seed's, check the
received archive against the manifest, ``docker load`` it and check that the image ID is the
seed's; then remove the archive (unless kept). Every docker call goes through DockerCli.
"""

from __future__ import annotations

import json
import os

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _manifest as M
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._agent_server import remove
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._docker_cli import ModuleFailure
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._image_archive import file_sha256


def archive_name(image_id):
    return "image-%s.tar" % image_id.split(":")[-1][:16]


def sidecar_path(directory, image_id):
    return os.path.join(directory, archive_name(image_id) + ".manifest.json")


class ImageTransfer:
    def __init__(self, docker, image, directory, host, check_mode=False):
        self.docker = docker
        self.image = image
        self.dir = directory
        self.host = host
        self.check_mode = check_mode

    def fail(self, message, **result):
        raise ModuleFailure("Host %s: %s" % (self.host, message), **result)

    def inspect(self):
        """The image's inspect data on this host, or None when it is absent."""
        done = self.docker.command(["image", "inspect", "--format", "{{json .}}", self.image])
        if done.rc != 0:
            if "No such image" in (done.stderr or "") or "No such object" in (done.stderr or ""):
                return None
            self.fail("docker image inspect %s failed on %s: %s"
                      % (self.image, self.docker.docker_host, (done.stderr or done.stdout).strip()[-1000:]))
        return json.loads(done.stdout)

    # ---- the seed
    def saved(self):
        info = self.inspect()
        if info is None:
            if self.check_mode:
                return {"changed": True, "image_id": None, "manifest": None, "path": None}
            self.fail("image %s is not on the seed, so it cannot be saved for the other hosts" % self.image)
        image_id = info["Id"]
        path = os.path.join(self.dir, archive_name(image_id))
        try:
            with open(sidecar_path(self.dir, image_id), encoding="utf-8") as handle:
                manifest = M.load(handle.read(), sidecar_path(self.dir, image_id))
        except (OSError, M.ManifestError):
            manifest = None
        tree = M.check_tree(self.dir, manifest) if manifest and manifest.get("revision") == image_id else None
        if tree and not tree["missing"] and not tree["bad"]:
            return {"changed": False, "image_id": image_id, "manifest": manifest, "path": path}
        if self.check_mode:
            return {"changed": True, "image_id": image_id, "manifest": None, "path": path}
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        partial = path + ".saving"
        remove(partial)
        done = self.docker.command(["save", "--output", partial, self.image])
        if done.rc != 0:
            remove(partial)
            self.fail("docker save %s into %s failed%s: %s" % (
                self.image, self.dir, " (out of time: raise sglang_fanout_timeout)" if done.timed_out else "",
                (done.stderr or done.stdout).strip()[-1000:]))
        os.chmod(partial, 0o600)
        size = os.path.getsize(partial)
        manifest = M.build(self.image, image_id, [{"path": os.path.basename(path), "size": size,
                                                   "sha256": file_sha256(partial), "git_sha1": None}])
        os.replace(partial, path)
        sidecar = sidecar_path(self.dir, image_id)
        with open(sidecar + ".tmp", "w", encoding="utf-8") as handle:
            json.dump(manifest, handle, sort_keys=True)
        os.replace(sidecar + ".tmp", sidecar)
        M.write_stamp(self.dir, manifest, {os.path.basename(path): M.stamp_entry(path, manifest["files"][0])})
        return {"changed": True, "image_id": image_id, "manifest": manifest, "path": path}

    # ---- every host of the fan-out
    def loaded(self, manifest, image_id, keep_archive):
        info = self.inspect()
        result = {"changed": False, "loaded": False, "removed": [], "image_id": info and info.get("Id")}
        if not (info and info.get("Id") == image_id):
            if not manifest:
                if self.check_mode:
                    return dict(result, changed=True, loaded=True)
                self.fail("no image archive was received to load %s from" % self.image)
            entry = manifest["files"][0]
            path = os.path.join(self.dir, entry["path"])
            tree = M.check_tree(self.dir, manifest)
            if tree["missing"] or tree["bad"]:
                if self.check_mode:
                    return dict(result, changed=True, loaded=True)
                reason = tree["bad"][0]["reason"] if tree["bad"] else "missing"
                self.fail("the image archive %s is not the seed's (%s); nothing was loaded" % (path, reason))
            if self.check_mode:
                return dict(result, changed=True, loaded=True)
            done = self.docker.command(["load", "--input", path])
            if done.rc != 0:
                self.fail("docker load of %s failed%s: %s" % (
                    path, " (out of time: raise sglang_fanout_timeout)" if done.timed_out else "",
                    (done.stderr or done.stdout).strip()[-1000:]))
            info = self.inspect()
            got = info and info.get("Id")
            if got != image_id:
                self.fail("after docker load, %s is image %s but the seed's is %s; the archive is kept "
                          "at %s for inspection" % (self.image, got, image_id, path))
            result.update(changed=True, loaded=True, image_id=got)
        if manifest and not keep_archive:
            result["removed"] = self.remove_archive(manifest)
            result["changed"] = result["changed"] or bool(result["removed"])
        return result

    def remove_archive(self, manifest):
        """Remove the archive, its manifest and its stamp entry; the paths that were there."""
        entry = manifest["files"][0]
        paths = [os.path.join(self.dir, entry["path"]), sidecar_path(self.dir, manifest["revision"])]
        there = [path for path in paths if os.path.lexists(path)]
        if self.check_mode or not there:
            return there
        for path in there:
            remove(path)
        stamp = M.read_stamp(self.dir)["files"]
        stamp.pop(entry["path"], None)
        if stamp:
            M.write_stamp(self.dir, manifest, stamp)
        else:
            remove(os.path.join(self.dir, M.STAMP))
        return there
