// PluginFiles (the daemon holding the [plugins] files open) and, on the
// worker's side, InheritedPlugin and LoadCpuKinds loading a held file.

#include "daemon/plugin_files.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "daemon/kinds/plugin_loader.h"

namespace crunch::daemon {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/crunchd-plugin-files-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

  // Puts `content` at `name` as a new file (a new inode), as an install does.
  void Write(const std::string& name, const std::string& content) const {
    std::ofstream(path_ / (name + ".new")) << content;
    fs::rename(path_ / (name + ".new"), path_ / name);
  }
  void Install(const std::string& from, const std::string& name) const {
    fs::copy_file(from, path_ / (name + ".new"), fs::copy_options::overwrite_existing);
    fs::rename(path_ / (name + ".new"), path_ / name);
  }

 private:
  fs::path path_;
};

ino_t InodeOf(int fd) {
  struct stat st {};
  EXPECT_EQ(::fstat(fd, &st), 0);
  return st.st_ino;
}

ino_t InodeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0);
  return st.st_ino;
}

TEST(PluginFiles, ARelativePathIsRefusedNamingIt) {
  TempDir dir;
  dir.Write("a.so", "a");
  absl::StatusOr<std::shared_ptr<const PluginFiles>> files =
      PluginFiles::Open({dir / "a.so", "relative/plugin.so"});
  ASSERT_FALSE(files.ok());
  EXPECT_EQ(files.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(files.status().message(), HasSubstr("'relative/plugin.so'"));
  EXPECT_THAT(files.status().message(), HasSubstr("absolute"));
}

TEST(PluginFiles, AFileThatCannotBeOpenedIsNamedWithTheReason) {
  absl::StatusOr<std::shared_ptr<const PluginFiles>> files =
      PluginFiles::Open({"/nonexistent/plugin.so"});
  ASSERT_FALSE(files.ok());
  EXPECT_EQ(files.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(files.status().message(), HasSubstr("/nonexistent/plugin.so"));
  EXPECT_THAT(files.status().message(), HasSubstr("No such file or directory"));
}

TEST(PluginFiles, FingerprintIsThePathsUntilAFileAtOneIsReplacedOrRemoved) {
  TempDir dir;
  dir.Write("a.so", "a");
  dir.Write("b.so", "b");
  const std::vector<std::string> paths = {dir / "a.so", dir / "b.so"};
  absl::StatusOr<std::shared_ptr<const PluginFiles>> files = PluginFiles::Open(paths);
  ASSERT_TRUE(files.ok()) << files.status();
  EXPECT_EQ((*files)->paths(), paths);
  EXPECT_EQ((*files)->Fingerprint(), PluginFilesFingerprint(paths));
  EXPECT_EQ((*PluginFiles::Open({}))->Fingerprint(), "");

  dir.Write("b.so", "b rebuilt");
  EXPECT_NE((*files)->Fingerprint(), PluginFilesFingerprint(paths));
  absl::StatusOr<std::shared_ptr<const PluginFiles>> reopened = PluginFiles::Open(paths);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_EQ((*reopened)->Fingerprint(), PluginFilesFingerprint(paths));

  fs::remove(dir / "a.so");
  EXPECT_THAT(PluginFilesFingerprint(paths), HasSubstr("missing"));
  EXPECT_NE((*reopened)->Fingerprint(), PluginFilesFingerprint(paths));
}

TEST(PluginFiles, AddToHandsEachHeldFileToTheChildAtItsFdUnderItsPath) {
  TempDir dir;
  dir.Write("a.so", "a");
  dir.Write("b.so", "b");
  absl::StatusOr<std::shared_ptr<const PluginFiles>> files =
      PluginFiles::Open({dir / "a.so", dir / "b.so"});
  ASSERT_TRUE(files.ok()) << files.status();
  const ino_t a = InodeOf(dir / "a.so");
  const ino_t b = InodeOf(dir / "b.so");
  dir.Write("a.so", "a rebuilt");

  ipc::SpawnOptions spawn;
  spawn.args = {"--describe"};
  spawn.fds = {{1, 1}};
  (*files)->AddTo(&spawn);
  const int first = PluginFiles::kFirstPluginFd;
  EXPECT_THAT(spawn.args, ::testing::ElementsAre(
                              "--describe", absl::StrCat("--plugin-fd=", first, ":", dir / "a.so"),
                              absl::StrCat("--plugin-fd=", first + 1, ":", dir / "b.so")));
  ASSERT_EQ(spawn.fds.size(), 3u);
  EXPECT_EQ(spawn.fds[1].second, first);
  EXPECT_EQ(spawn.fds[2].second, first + 1);
  // The files as opened, not what is at the paths now.
  EXPECT_EQ(InodeOf(spawn.fds[1].first), a);
  EXPECT_EQ(InodeOf(spawn.fds[2].first), b);
}

TEST(InheritedPlugin, ANotOpenFdIsRefusedNamingThePluginAndTheFd) {
  absl::StatusOr<PluginToLoad> plugin = InheritedPlugin(987, "/opt/plugins/text.so");
  ASSERT_FALSE(plugin.ok());
  EXPECT_THAT(plugin.status().message(), HasSubstr("/opt/plugins/text.so"));
  EXPECT_THAT(plugin.status().message(), HasSubstr("987"));
}

TEST(InheritedPlugin, LoadsThePathWhileItHoldsTheFileAndTheHeldFileOnceReplaced) {
  TempDir dir;
  const std::string path = dir / "text.so";
  dir.Install(CRUNCH_EXAMPLE_PLUGIN_WORDFREQ, "text.so");
  absl::StatusOr<std::shared_ptr<const PluginFiles>> files = PluginFiles::Open({path});
  ASSERT_TRUE(files.ok()) << files.status();
  ipc::SpawnOptions spawn;
  (*files)->AddTo(&spawn);
  const int fd = spawn.fds.at(0).first;

  absl::StatusOr<PluginToLoad> plugin = InheritedPlugin(fd, path);
  ASSERT_TRUE(plugin.ok()) << plugin.status();
  EXPECT_EQ(plugin->name, path);
  EXPECT_EQ(plugin->load_path, path);

  // Rebuilt on disk: the held file, named by its path all the same.
  dir.Install(CRUNCH_TEST_PLUGIN_DUPLICATE, "text.so");
  plugin = InheritedPlugin(fd, path);
  ASSERT_TRUE(plugin.ok()) << plugin.status();
  EXPECT_EQ(plugin->name, path);
  EXPECT_EQ(plugin->load_path, absl::StrCat("/proc/self/fd/", fd));
  absl::StatusOr<std::vector<KindSpec>> kinds = LoadCpuKinds({*plugin});
  ASSERT_TRUE(kinds.ok()) << kinds.status();
  const KindSpec* wordfreq = nullptr;
  for (const KindSpec& k : *kinds) {
    EXPECT_NE(k.name, "dup.unique") << "the file now at the path was loaded";
    if (k.name == "text.wordfreq") wordfreq = &k;
  }
  ASSERT_NE(wordfreq, nullptr);
  EXPECT_THAT(wordfreq->source, ::testing::StartsWith("plugin wordfreq "));
  EXPECT_THAT(wordfreq->source, ::testing::EndsWith(absl::StrCat(" (", path, ")")));
}

TEST(LoadCpuKinds, ErrorsNameThePluginNotTheFileItWasLoadedFrom) {
  TempDir dir;
  dir.Write("broken.so", "not a shared library");
  const int opened = ::open((dir / "broken.so").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(opened, 0);
  // At a number no other test loaded a plugin from: dlopen() returns what it
  // already loaded under the same name.
  const int fd = ::fcntl(opened, F_DUPFD_CLOEXEC, 900);
  ::close(opened);
  ASSERT_GE(fd, 900);
  const std::string proc_path = absl::StrCat("/proc/self/fd/", fd);
  absl::StatusOr<std::vector<KindSpec>> kinds =
      LoadCpuKinds({{.name = "/opt/plugins/broken.so", .load_path = proc_path}});
  ::close(fd);
  ASSERT_FALSE(kinds.ok());
  EXPECT_THAT(kinds.status().message(), HasSubstr("cannot load plugin /opt/plugins/broken.so: "));
  EXPECT_THAT(kinds.status().message(), Not(HasSubstr(proc_path)));

  kinds = LoadCpuKinds({{.name = "relative.so", .load_path = proc_path}});
  ASSERT_FALSE(kinds.ok());
  EXPECT_THAT(kinds.status().message(), HasSubstr("'relative.so' is not absolute"));
}

}  // namespace
}  // namespace crunch::daemon
