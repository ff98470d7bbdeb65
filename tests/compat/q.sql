create table t(a,b); insert into t values (1,'x'),(2,'y'),(3,'z'); select a, b, a*a from t order by a desc; select count(*) from t;
