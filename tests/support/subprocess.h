// Runs programs for the tests that drive the project's binaries: a command to
// completion with its exit status, stdout and stderr; a long-running child to
// wait for or stop later; a shell command's output. POSIX only
// (posix_spawn, popen), like the binaries under test.
#ifndef FER_TESTS_SUPPORT_SUBPROCESS_H_
#define FER_TESTS_SUPPORT_SUBPROCESS_H_

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/files.h"

extern char** environ;

namespace fer {
namespace test_support {

// Starts argv (argv[0] looked up on PATH unless it holds a '/') with stdin
// from /dev/null, stdout and stderr sent to files and extra "NAME=value"
// entries added to the environment. Returns the pid, or -1. The same path for
// both sends them to one file, in the order the program wrote them.
inline pid_t Spawn(const std::vector<std::string>& argv, const std::string& out_path,
                   const std::string& err_path, const std::vector<std::string>& extra_env = {}) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (err_path == out_path) {
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  } else {
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_path.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
  }
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_strings(extra_env);
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  std::vector<char*> env;
  for (std::string& entry : env_strings) env.push_back(entry.data());
  env.push_back(nullptr);
  pid_t pid = -1;
  const int error = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), env.data());
  posix_spawn_file_actions_destroy(&actions);
  return error == 0 ? pid : -1;
}

// The exit code of a waitpid status, 128 + signal for a signal, -1 otherwise.
inline int ExitCodeOf(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Waits for pid for at most timeout; kills it past that. Returns the exit
// status, 128 + signal for a signal, or -1 when it had to be killed.
inline int WaitFor(pid_t pid, std::chrono::seconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (true) {
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    if (done < 0) return -1;
    if (std::chrono::steady_clock::now() > end) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return ExitCodeOf(status);
}

struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs argv to completion (killed past timeout, exit_code -1); scratch_dir
// holds its captured output. Not for use from several threads at once.
inline RunResult Run(const std::vector<std::string>& argv, const std::string& scratch_dir,
                     std::chrono::seconds timeout = std::chrono::seconds(300),
                     const std::vector<std::string>& extra_env = {}) {
  static int counter = 0;
  const std::string base = scratch_dir + "/run" + std::to_string(counter++);
  RunResult result;
  const pid_t pid = Spawn(argv, base + ".out", base + ".err", extra_env);
  if (pid < 0) {
    result.err = "cannot start " + argv[0];
    return result;
  }
  result.exit_code = WaitFor(pid, timeout);
  result.out = ReadFile(base + ".out");
  result.err = ReadFile(base + ".err");
  return result;
}

// Runs command with /bin/sh and puts its stdout in *output. Returns the
// exit status, or -1 when the shell could not run or ended on a signal.
inline int RunShell(const std::string& command, std::string* output) {
  output->clear();
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return -1;
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof(buffer), pipe)) output->append(buffer, n);
  const int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Whether name is a program on PATH.
inline bool HaveProgram(const std::string& name) {
  return std::system(("command -v " + name + " > /dev/null 2>&1").c_str()) == 0;
}

}  // namespace test_support
}  // namespace fer

#endif  // FER_TESTS_SUPPORT_SUBPROCESS_H_
