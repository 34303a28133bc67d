version 1.0
import "lib/sub.wdl" as sub
workflow w {
  input { Array[Int] xs = [1, 2, 3] }
  call sub.summing { input: xs = xs }
  call sub.summing as again { input: xs = [summing.total, 10] }
  output { Int total = summing.total  Int more = again.total }
}
